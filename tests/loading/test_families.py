"""Every supported family against Hugging Face eager on tiny random checkpoints with odd shapes (issue 11).

Each check can fail: logits at atol 1e-5, every layer's residual against HF's hidden_states, every
pattern against HF's attentions, `check_parity=True`, save -> load exactly, and the cache's sums.
"""

from __future__ import annotations

import pytest
import torch
from family_models import FACTORIES, VOCAB, make

import interp
from interp.analysis import Resid, causal_trace, denoise, logit_diff
from interp.params import param_breakdown

KINDS = list(FACTORIES)
ATOL = 1e-5


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind -> folder with the HF model saved by save_pretrained (built once per module)."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            path = tmp_path_factory.mktemp(kind)
            make(kind).save_pretrained(path)
            cache[kind] = path
        return cache[kind]

    return get


def _hf_run(hf, tokens):
    with torch.no_grad():
        return hf(tokens, output_hidden_states=True, output_attentions=True)


@pytest.mark.parametrize("kind", KINDS)
def test_matches_hugging_face(kind, tokens, saved):
    hf = make(kind)
    ours = interp.load(saved(kind), check_parity=True)  # the folder path, as a user loads it
    assert ours.parity_max_diff < 1e-4
    ref = _hf_run(hf, tokens)
    logits, cache = ours.run_with_cache(tokens)
    torch.testing.assert_close(logits, ref.logits, atol=ATOL, rtol=0)
    n = ours.cfg.n_layers
    torch.testing.assert_close(cache["resid_pre", 0], ref.hidden_states[0], atol=ATOL, rtol=0)
    for layer in range(n - 1):  # HF's last hidden state is after its final norm
        torch.testing.assert_close(
            cache["resid_post", layer], ref.hidden_states[layer + 1], atol=ATOL, rtol=0, msg=f"layer {layer}"
        )
        torch.testing.assert_close(
            cache["resid_pre", layer + 1], ref.hidden_states[layer + 1], atol=ATOL, rtol=0
        )
    final = ours.ln_final(cache["resid_post", n - 1])
    if ours.cfg.d_embed is not None:  # OPT-350m's decoder output is after project_out
        final = final @ ours.unembed.W_project_out
    torch.testing.assert_close(final, ref.hidden_states[n], atol=ATOL, rtol=0)
    for layer in range(n):
        torch.testing.assert_close(cache["pattern", layer], ref.attentions[layer], atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_param_counts_match_the_model(kind):
    hf = make(kind)
    ours = interp.load(hf)
    df = param_breakdown(ours)  # raises if the formula and the model's parameters disagree
    multimodal = hasattr(getattr(hf, "model", None), "language_model")
    text = [hf.model.language_model, hf.lm_head] if multimodal else hf
    modules = text if isinstance(text, list) else [text]
    params = {id(p): p.numel() for m in modules for p in m.parameters()}  # a tied matrix once
    unused = 2 * ours.cfg.d_model if kind.startswith("opt") else 0  # OPT's two padding position rows
    assert df["params"].iloc[-1] == sum(params.values()) - unused


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trips_exactly(kind, tokens, tmp_path):
    ours = interp.load(make(kind))
    ours.save(tmp_path / "m")
    again = interp.load(tmp_path / "m")
    assert again.cfg == ours.cfg
    for (k, a), (k2, b) in zip(ours.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    assert torch.equal(again(tokens), ours(tokens))


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "opt-postln"])
def test_decompositions_sum(kind, tokens):
    ours = interp.load(make(kind))
    _, cache = ours.run_with_cache(tokens)
    n = ours.cfg.n_layers
    stack, labels = cache.decompose_resid(return_labels=True)
    torch.testing.assert_close(stack.sum(0), cache["resid_post", n - 1], atol=ATOL, rtol=0)
    for layer in range(n):
        stack, _ = cache.decompose_resid(layer, return_labels=True)
        torch.testing.assert_close(stack.sum(0), cache["resid_pre", layer], atol=ATOL, rtol=0)
        # mlp_input: what the MLP reads (resid_mid; resid_pre in a parallel block)
        mlp_reads = cache["resid_pre", layer] if ours.cfg.parallel_attn_mlp else cache["resid_mid", layer]
        stack, _ = cache.decompose_resid(layer, mlp_input=True, return_labels=True)
        torch.testing.assert_close(stack.sum(0), mlp_reads, atol=ATOL, rtol=0)
    # Per-head results (through a post-norm frozen at this run's scale) sum to attn_out, bias aside.
    heads, _ = cache.stack_head_results(return_labels=True)
    heads = heads.unflatten(0, (n, ours.cfg.n_heads)).sum(1)
    for layer in range(n):
        b_O = ours.blocks[layer].attn.b_O
        expected = cache["attn_out", layer] - (0 if b_O is None else b_O)
        torch.testing.assert_close(heads[layer], expected, atol=ATOL, rtol=0, msg=f"layer {layer}")


def test_post_ln_decompose_resid_says_why(tokens):
    ours = interp.load(make("opt-postln"))
    _, cache = ours.run_with_cache(tokens)
    with pytest.raises(ValueError, match="renormalise the residual"):
        cache.decompose_resid()
    # The post-LN residual really is not the sum of the writes (so raising is right, not cautious).
    parts = cache["embed"] + cache["pos_embed"]
    parts = parts + sum(cache["attn_out", i] + cache["mlp_out", i] for i in range(ours.cfg.n_layers))
    assert (parts - cache["resid_post", ours.cfg.n_layers - 1]).abs().max() > 1e-2


@pytest.mark.parametrize("kind", ["neox", "gptj"])
def test_parallel_block_has_no_resid_mid(kind, tokens):
    ours = interp.load(make(kind))
    assert "blocks.0.hook_resid_mid" not in ours.hook_names()
    with pytest.raises(KeyError, match="parallel block"):
        ours.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_mid", lambda x, hook: None)])
    _, cache = ours.run_with_cache(tokens)
    with pytest.raises(KeyError, match="parallel block"):
        cache["resid_mid", 0]
    # resid_post = resid_pre + attn_out + mlp_out, the whole story of the block
    for layer in range(ours.cfg.n_layers):
        total = cache["resid_pre", layer] + cache["attn_out", layer] + cache["mlp_out", layer]
        torch.testing.assert_close(cache["resid_post", layer], total, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", ["gemma2", "gemma3", "olmo2"])
def test_post_norm_is_inside_attn_out(kind, tokens):
    """attn_out is what is added to the residual: the post-norm of the heads' raw sum."""
    ours = interp.load(make(kind))
    _, cache = ours.run_with_cache(tokens)
    for layer in range(ours.cfg.n_layers):
        torch.testing.assert_close(
            cache["resid_mid", layer], cache["resid_pre", layer] + cache["attn_out", layer], atol=ATOL, rtol=0
        )
        raw = cache["z", layer].flatten(2) @ ours.blocks[layer].attn.W_O.flatten(0, 1)
        torch.testing.assert_close(
            ours.blocks[layer].ln1_post(raw), cache["attn_out", layer], atol=ATOL, rtol=0
        )
        assert (raw - cache["attn_out", layer]).abs().max() > 1e-2  # the norm does change it


@pytest.mark.parametrize("kind", KINDS)
def test_patching_and_tracing_run(kind):
    ours = interp.load(make(kind))
    gen = torch.Generator().manual_seed(3)
    clean, corrupted = torch.randint(0, VOCAB, (2, 1, 6), generator=gen)
    df = denoise(ours, clean, corrupted, Resid.every(ours), logit_diff(3, 4))
    assert len(df) == ours.cfg.n_layers and df["metric"].notna().all()
    # Restoring the whole clean residual entering a layer recovers the clean metric exactly.
    logits = ours(clean)
    clean_ld = (logits[0, -1, 3] - logits[0, -1, 4]).item()
    assert df["metric"].tolist() == pytest.approx([clean_ld] * ours.cfg.n_layers, abs=1e-4)
    trace = causal_trace(ours, clean, (1, 3), target=3, n_samples=2, progress=False)
    assert len(trace) == ours.cfg.n_layers * clean.shape[1] and trace["indirect_effect"].notna().all()
