"""Calls where interp used to keep its own meaning: under TL's names they now give TL 3.9's numbers.

`logit_attrs`, `accumulated_resid(apply_ln=True)`, `apply_ln_to_stack(batch_slice=, has_batch_dim=,
recompute_ln=)`, `tokens_to_residual_directions` and `b_U`, on an unprocessed model and on one processed as
TL 3's `from_pretrained` does. References: TL 3's HookedTransformer on the same weights (second env), TL 4's
bridge (main env, unprocessed only), and always a hand-written formula. interp's own meaning stays under
interp's name (`cache.direct_logit_attrs`).
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from compat_helpers import TL3, hf_gpt2, hf_llama_gqa, tl3_model, tl_reference, word_tokenizer

import interp

PROMPTS = [
    "When John and Mary went to the store, John gave a bag to",
    "When Tom and Sally went to the park, Tom gave a ball to",
]
TL3_DEFAULTS = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)
ATOL = dict(atol=3e-5, rtol=0)
HF = {"gpt2": hf_gpt2, "llama": hf_llama_gqa}


@functools.cache
def _case(arch: str, processed: bool):
    flags = TL3_DEFAULTS if processed else {}
    ours = interp.load(HF[arch](), tokenizer=word_tokenizer(), **flags)
    if TL3:
        ref = tl3_model(HF[arch](), **flags)
    else:  # TL 4's bridge: Hugging Face weights as they are
        ref = None if processed else tl_reference(HF[arch]())
    tokens = ours.to_tokens(PROMPTS)
    logits, cache = ours.run_with_cache(tokens)
    ref_cache = None if ref is None else ref.run_with_cache(tokens)[1]
    return ours, ref, tokens, logits, cache, ref_cache


@pytest.fixture(params=[("gpt2", False), ("gpt2", True), ("llama", False), ("llama", True)],
                ids=["gpt2-raw", "gpt2-tl3-processed", "llama-raw", "llama-tl3-processed"])  # fmt: skip
def case(request):
    return _case(*request.param)


def _frozen_ln_final(model, cache, stack, pos=-1):
    """By hand: centre (LayerNorm only), divide by ln_final's cached scale at `pos`; no weight."""
    if model.cfg.normalization_type.startswith("LN"):
        stack = stack - stack.mean(-1, keepdim=True)
    return stack / cache["ln_final.hook_scale"][:, pos]


def _ln_final_by_hand(model, x):
    """ln_final itself, written out: its own statistics, weight (and bias)."""
    w = model.ln_final.w
    if model.cfg.normalization_type.startswith("LN"):
        return F.layer_norm(x, w.shape, w, model.ln_final.b, model.cfg.eps)
    return w * x / (x.pow(2).mean(-1, keepdim=True) + model.cfg.eps).sqrt()


def test_tokens_to_residual_directions_are_the_W_U_columns(case):
    model, ref, tokens, *_ = case
    ids = tokens[:, -1]
    dirs = model.tokens_to_residual_directions(ids)
    torch.testing.assert_close(dirs, model.W_U[:, ids].T, atol=0, rtol=0)  # no ln_final weight in them
    assert model.tokens_to_residual_directions(torch.tensor([6])).shape == (model.cfg.d_model,)  # one token
    torch.testing.assert_close(model.tokens_to_residual_directions(" Mary"), model.W_U[:, 6], atol=0, rtol=0)
    if ref is not None:
        torch.testing.assert_close(dirs, ref.tokens_to_residual_directions(ids).detach(), atol=1e-6, rtol=0)
        torch.testing.assert_close(
            model.tokens_to_residual_directions(torch.tensor([6])),
            ref.tokens_to_residual_directions(torch.tensor([6])).detach(), atol=1e-6, rtol=0,
        )  # fmt: skip


def test_logit_attrs_equal_transformer_lens(case):
    model, ref, tokens, _, cache, ref_cache = case
    ans, wrong = tokens[:, -1], torch.tensor([6, 37])
    stack = cache.decompose_resid(pos_slice=-1)
    full = cache.decompose_resid()
    calls = [
        ((stack, ans), dict(pos_slice=-1)),
        ((stack, ans, wrong), dict(pos_slice=-1)),
        ((stack, " Mary", " John"), dict(pos_slice=-1)),
        ((full, tokens), {}),  # [batch, pos] tokens against a full stack
        ((stack, 6), dict(pos_slice=-1, batch_slice=1)),  # one batch row of the stack and the scale
    ]
    for args, kw in calls:
        got = cache.logit_attrs(*args, **kw)
        if ref_cache is not None:
            ref_args = tuple(
                torch.tensor(model.to_single_token(a)) if isinstance(a, str) else a for a in args[1:]
            )
            ref_stack = ref_cache.decompose_resid(pos_slice=kw.get("pos_slice"))
            want = ref_cache.logit_attrs(ref_stack, *ref_args, **kw)
            torch.testing.assert_close(got, want, **ATOL, msg=f"logit_attrs{kw}")
    # By hand: the raw stack over ln_final's cached scale, dotted with W_U columns.
    d = model.W_U[:, ans] - model.W_U[:, wrong]
    by_hand = (_frozen_ln_final(model, cache, stack) * d.T).sum(-1)
    torch.testing.assert_close(cache.logit_attrs(stack, ans, wrong, pos_slice=-1), by_hand, atol=1e-5, rtol=0)
    row = cache.logit_attrs(stack, 6, pos_slice=-1, batch_slice=1)
    # A 2-D and a 3-D matmul sum in different orders: equal to float32 rounding, not bit for bit.
    torch.testing.assert_close(row, cache.logit_attrs(stack, 6, pos_slice=-1)[:, 1], atol=1e-6, rtol=1e-5)


def test_logit_attrs_without_batch_dim(case):
    model, ref, tokens, *_ = case
    _, one = model.run_with_cache(tokens[:1], remove_batch_dim=True)
    stack = one.decompose_resid(pos_slice=-1)  # [component, d_model]
    got = one.logit_attrs(stack, int(tokens[0, -1]), pos_slice=-1, has_batch_dim=False)
    if ref is not None:
        _, ref_one = ref.run_with_cache(tokens[:1], remove_batch_dim=True)
        want = ref_one.logit_attrs(
            ref_one.decompose_resid(pos_slice=-1), int(tokens[0, -1]), pos_slice=-1, has_batch_dim=False
        )
        torch.testing.assert_close(got, want, **ATOL)
    _, batched = model.run_with_cache(tokens[:1])
    want = batched.logit_attrs(batched.decompose_resid(pos_slice=-1), int(tokens[0, -1]), pos_slice=-1)[:, 0]
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)  # float32 rounding (see above)


def test_accumulated_resid_apply_ln_is_the_logit_lens(case):
    model, ref, tokens, logits, cache, ref_cache = case
    for kw in [{}, dict(pos_slice=-1), dict(incl_mid=True), dict(layer=1), dict(layer=1, mlp_input=True)]:
        got = cache.accumulated_resid(apply_ln=True, **kw)
        if ref_cache is not None:
            want = ref_cache.accumulated_resid(apply_ln=True, **kw)
            torch.testing.assert_close(got, want, **ATOL, msg=f"accumulated_resid{kw}")
    # By hand: at the unembed every state goes through ln_final itself with its own statistics ...
    raw, labels = cache.accumulated_resid(pos_slice=-1, return_labels=True)
    lens = cache.accumulated_resid(apply_ln=True, pos_slice=-1)
    torch.testing.assert_close(lens, _ln_final_by_hand(model, raw), atol=1e-5, rtol=0)
    # ... so the last row through the unembedding is the model's logits, the logit lens's endpoint.
    assert labels[-1] == "final_post"
    torch.testing.assert_close(lens[-1] @ model.W_U + model.b_U, logits[:, -1], atol=1e-4, rtol=0)
    # Below the unembed: layer 1's ln1 cached scale, no weight.
    below = cache.accumulated_resid(1, apply_ln=True, pos_slice=-1)
    scale = cache["blocks.1.ln1.hook_scale"][:, -1]
    centred = raw[:2] - (
        raw[:2].mean(-1, keepdim=True) if model.cfg.normalization_type.startswith("LN") else 0
    )
    torch.testing.assert_close(below, centred / scale, atol=1e-5, rtol=0)


def test_apply_ln_to_stack_options_equal_transformer_lens(case):
    model, ref, tokens, _, cache, ref_cache = case
    stack = cache.decompose_resid(pos_slice=-1)
    calls = [dict(pos_slice=-1), dict(pos_slice=-1, batch_slice=0), dict(pos_slice=-1, batch_slice=[1]),
             dict(pos_slice=-1, recompute_ln=True), dict(layer=1, mlp_input=True, pos_slice=-1)]  # fmt: skip
    for kw in calls:
        layer = kw.pop("layer", -1)
        got = cache.apply_ln_to_stack(stack if layer == -1 else cache.decompose_resid(layer, True, pos_slice=-1),
                                      layer, **kw)  # fmt: skip
        if ref_cache is not None:
            ref_stack = ref_cache.decompose_resid(layer, layer != -1, pos_slice=-1)
            want = ref_cache.apply_ln_to_stack(ref_stack, layer, **kw)
            torch.testing.assert_close(got, want, **ATOL, msg=f"apply_ln_to_stack{kw}")
    torch.testing.assert_close(
        cache.apply_ln_to_stack(stack, -1, pos_slice=-1, batch_slice=0), _frozen_ln_final(model, cache, stack)[:, 0],
        atol=1e-5, rtol=0,
    )  # fmt: skip
    torch.testing.assert_close(
        cache.apply_ln_to_stack(stack, -1, pos_slice=-1, recompute_ln=True), _ln_final_by_hand(model, stack),
        atol=1e-5, rtol=0,
    )  # fmt: skip


def test_direct_logit_attrs_keep_interps_meaning(case):
    """interp's DLA includes ln_final's weight: it sums to the logit on any model, and equals TL's
    logit_attrs on a folded one (where that weight is 1)."""
    model, _, tokens, logits, cache, _ = case
    ans, wrong = tokens[:, -1], torch.tensor([6, 37])
    stack = cache.decompose_resid(pos_slice=-1)
    attrs = cache.direct_logit_attrs(stack, ans, wrong, pos_slice=-1)
    rows = torch.arange(2)
    b = getattr(model.ln_final, "b", None)
    d = model.W_U[:, ans] - model.W_U[:, wrong]
    constant = (0 if b is None else b @ d) + model.b_U[ans] - model.b_U[wrong]
    want = logits[rows, -1, ans] - logits[rows, -1, wrong]
    torch.testing.assert_close(attrs.sum(0) + constant, want, atol=1e-4, rtol=0)
    tl = cache.logit_attrs(stack, ans, wrong, pos_slice=-1)
    if model.processing.get("fold_ln"):
        torch.testing.assert_close(attrs, tl, atol=1e-6, rtol=0)
    else:
        assert (attrs - tl).abs().max() > 1e-2  # the unfolded weight is the difference


def test_b_U_reads_as_zeros_on_a_model_without_one(tmp_path):
    model = interp.load(hf_gpt2(), tokenizer=word_tokenizer())  # tied, no lm_head bias
    assert model.unembed.bias is None and "unembed.b_U" not in model.state_dict()
    zeros = torch.zeros(model.cfg.d_vocab)
    torch.testing.assert_close(model.unembed.b_U, zeros, atol=0, rtol=0)
    assert (
        model.b_U is not None and float(model.b_U[6]) == 0.0 and model.b_U[torch.tensor([5, 6])].shape == (2,)
    )
    if TL3:
        ref = tl3_model(hf_gpt2())
        torch.testing.assert_close(model.b_U, ref.b_U.detach(), atol=0, rtol=0)
    # The forward adds nothing: the unembedding is exactly x @ W_E.T, as before (no zero bias added).
    x = torch.randn(2, 5, model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    assert torch.equal(model.unembed(x), F.linear(x, model.W_E))
    tokens = model.to_tokens(PROMPTS)
    logits = model(tokens)
    for write in (lambda b: b.__setitem__(6, 1.0), lambda b: b[6].add_(1.0), lambda b: b.add_(1.0)):
        with pytest.raises(RuntimeError, match="Inplace update to inference tensor"):
            write(model.b_U)  # a write into the stand-in would be silently lost: refused
    # The saved format is unchanged: no b_U written, and the reload has none either.
    again = interp.load(model.save(tmp_path / "m"))
    assert again.unembed.bias is None and torch.equal(again(tokens), logits)
    # Assigning a real parameter gives the model a bias the forward uses.
    model = interp.load(hf_gpt2(), tokenizer=word_tokenizer())
    model.unembed.b_U = torch.nn.Parameter(torch.arange(model.cfg.d_vocab, dtype=torch.float32))
    torch.testing.assert_close(model(tokens), logits + model.b_U, atol=1e-5, rtol=0)
    assert "unembed.b_U" in model.state_dict()
