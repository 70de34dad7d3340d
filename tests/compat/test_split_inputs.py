"""TL's per-head input hook points (hook_attn_in, hook_q/k/v_input, hook_mlp_in): exact, local, only when hooked."""

from __future__ import annotations

import copy

import pytest
import torch
from compat_helpers import gpt2, llama

PROMPTS = [
    "When John and Mary went to the store, John gave a bag to",
    "When Tom and Sally went to the park, Tom",
]


@pytest.mark.parametrize("make", [gpt2, llama])
def test_unedited_split_inputs_change_nothing(make):
    m = make()
    tokens = m.to_tokens(PROMPTS)
    base = m(tokens)
    for name in ("hook_attn_in", "hook_q_input", "hook_mlp_in"):
        seen = []
        logits = m.run_with_hooks(
            tokens, fwd_hooks=[(f"blocks.1.{name}", lambda x, hook, seen=seen: seen.append(x.shape))]
        )
        torch.testing.assert_close(logits, base, atol=1e-5, rtol=0)
        want = (
            (2, tokens.shape[1], m.cfg.n_heads, m.cfg.d_model)
            if name != "hook_mlp_in"
            else (2, tokens.shape[1], m.cfg.d_model)
        )
        assert seen == [want], name


@pytest.mark.parametrize("make", [gpt2, llama])
def test_patching_one_heads_query_input_reaches_only_that_head(make):
    m = make()
    tokens = m.to_tokens(PROMPTS)
    _, clean = m.run_with_cache(tokens)
    head = 1
    delta = torch.randn(m.cfg.d_model, generator=torch.Generator().manual_seed(0))

    def edit(x, hook):
        x[:, :, head] += delta

    with m.hooks([("blocks.1.hook_q_input", edit)]):
        _, patched = m.run_with_cache(tokens, names_filter=lambda n: n.startswith("blocks.1.attn.hook_"))
    q_clean, q_patched = clean["q", 1], patched["q", 1]
    others = [h for h in range(m.cfg.n_heads) if h != head]
    torch.testing.assert_close(q_patched[:, :, others], q_clean[:, :, others], atol=1e-5, rtol=0)
    # The patched head's query is the one a hand-written LN + projection gives for the shifted input.
    block = m.blocks[1]
    x = clean["resid_pre", 1] + delta
    want = block.ln1(x) @ block.attn.W_Q[head] + (0 if block.attn.b_Q is None else block.attn.b_Q[head])
    got = q_patched[:, :, head] if m.cfg.positional == "learned" else None
    if got is not None:
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(patched["k", 1], clean["k", 1], atol=1e-5, rtol=0)  # keys untouched


def test_mlp_in_edit_changes_the_mlp_but_not_the_residual_path():
    m = gpt2()
    tokens = m.to_tokens(PROMPTS)
    _, clean = m.run_with_cache(tokens)

    def zero(x, hook):
        x.zero_()

    with m.hooks([("blocks.0.hook_mlp_in", zero)]):
        _, cache = m.run_with_cache(tokens, names_filter=["blocks.0.hook_resid_mid", "blocks.0.mlp.hook_pre"])
    torch.testing.assert_close(cache["resid_mid", 0], clean["resid_mid", 0])
    ref = copy.deepcopy(m.blocks[0])
    want = ref.ln2(torch.zeros_like(clean["resid_mid", 0])) @ ref.mlp.W_in + ref.mlp.b_in
    torch.testing.assert_close(cache["pre", 0], want, atol=1e-5, rtol=0)


def test_default_cache_skips_them_unless_switched_on():
    m = copy.deepcopy(gpt2())
    tokens = m.to_tokens(PROMPTS[:1])
    _, cache = m.run_with_cache(tokens)
    assert not any(k.endswith(("hook_q_input", "hook_attn_in", "hook_mlp_in")) for k in cache)
    m.set_use_split_qkv_input(True)
    m.set_use_hook_mlp_in(True)
    assert m.cfg.use_split_qkv_input
    _, cache = m.run_with_cache(tokens)
    assert (
        cache["blocks.0.hook_q_input"].shape == (1, tokens.shape[1], 4, 32)
        and "blocks.2.hook_mlp_in" in cache
    )
    assert "blocks.0.hook_attn_in" not in cache  # TL: split inputs win over attn_in
    torch.testing.assert_close(cache["blocks.0.hook_k_input"][:, :, 3], cache["resid_pre", 0])


def test_both_kinds_on_one_block_is_an_error():
    m = gpt2()
    with pytest.raises(ValueError, match="alternatives"):
        m.run_with_hooks(m.to_tokens(PROMPTS[:1]), fwd_hooks=[("blocks.0.hook_attn_in", lambda x, h: None),
                                                               ("blocks.0.hook_v_input", lambda x, h: None)])  # fmt: skip
    assert m.hook_count() == 0
