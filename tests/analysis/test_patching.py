"""Batched activation patching against TransformerLens and against a naive one-forward-per-site loop."""

from __future__ import annotations

import copy

import pytest
import torch
from analysis_helpers import gpt2_like, llama_like, token_pair
from conftest import make_hf  # tests/conftest.py: tiny random Hugging Face models

import interp
from interp.analysis import (
    MLP,
    Attn,
    Head,
    Neuron,
    ResidMid,
    ResidPost,
    ResidPre,
    denoise,
    logit_diff,
    noise,
    patch,
)


def naive_patch(model, base, source, sites, metric):
    """One full forward per cell, the copy done by a hand-written hook."""
    _, cache = model.run_with_cache(source)
    out = []
    for cell in sites:
        cell = cell if isinstance(cell, (list, tuple)) else [cell]

        def hooks_for(site):
            def hook(act, hook):
                act = act.clone()
                act[site.selector] = cache[site.hook_name][site.selector]
                return act

            return (site.hook_name, hook)

        with torch.no_grad():
            logits = model.run_with_hooks(base, fwd_hooks=[hooks_for(s) for s in cell])
        out.append(float(metric(logits[:, -1])))
    return torch.tensor(out)


def test_matches_transformer_lens():
    import transformer_lens.patching as tl
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    hf = make_hf("gpt2")
    model = interp.load(hf)
    bridge = build_bridge_from_module(copy.deepcopy(hf), "GPT2LMHeadModel", hf_config=hf.config).eval()
    clean, corrupted = token_pair(model, batch=2, n_pos=4)
    clean, corrupted = clean[:, :3], corrupted[:, :3]  # one corrupted position is enough; TL is slow
    _, clean_cache = bridge.run_with_cache(clean)
    metric = logit_diff([3, 4], [5, 6])

    def tl_metric(logits):
        return metric(logits[:, -1])

    n, h = model.cfg.n_layers, model.cfg.n_heads
    cases = [
        (tl.get_act_patch_resid_pre, ResidPre.every(model, 3), (n, 3)),
        (tl.get_act_patch_attn_head_out_all_pos, Head.every(model), (n, h)),
        (tl.get_act_patch_mlp_out, MLP.every(model, 3), (n, 3)),
    ]
    for tl_fn, sites, shape in cases:
        expected = tl_fn(bridge, corrupted, clean_cache, tl_metric)
        df = denoise(model, clean, corrupted, sites, metric)
        got = torch.tensor(df["metric"].to_numpy(), dtype=torch.float32).view(shape)
        assert (got - expected).abs().max() < 1e-4, tl_fn


SWEEPS = {
    "resid_pre": lambda m, p: ResidPre.every(m, p),
    "resid_mid": lambda m, p: ResidMid.every(m, p, layers=[1]),
    "resid_post": lambda m, p: ResidPost.every(m, p, layers=[2]),
    "attn_out": lambda m, p: Attn.every(m, p, layers=[0, 2]),
    "mlp_out": lambda m, p: MLP.every(m, p, layers=[1]),
    "head_by_pos": lambda m, p: Head.every(m, p, layers=[1]),
    "q": lambda m, p: Head.every(m, part="q"),
    "k_by_pos": lambda m, p: Head.every(m, p, part="k", layers=[2]),
    "v": lambda m, p: Head.every(m, part="v"),
    "pattern_by_dest": lambda m, p: Head.every(m, p, part="pattern", layers=[0]),
    "neurons": lambda m, p: [Neuron(layer, i, -1) for layer in range(m.cfg.n_layers) for i in (0, 7)],
    "groups": lambda m, p: [[Head(0, 1), Head(2, 3)], [MLP(1, 2), ResidMid(2, 4)]],
}
CASES = [(gpt2_like, s) for s in SWEEPS] + [
    (llama_like, s) for s in ("resid_pre", "head_by_pos", "k_by_pos", "v", "groups")
]


@pytest.mark.parametrize(("make", "sweep"), CASES, ids=[f"{m.__name__}-{s}" for m, s in CASES])
def test_matches_naive_loop_both_directions(make, sweep):
    model = make()
    clean, corrupted = token_pair(model)
    sites = SWEEPS[sweep](model, clean.shape[1])
    metric = logit_diff([3, 4], [5, 6])
    # A small max_rows forces several chunks per layer, so chunking and row offsets are exercised too.
    for base, source in ((corrupted, clean), (clean, corrupted)):
        got = patch(model, base, source, sites, metric, max_rows=6)
        torch.testing.assert_close(
            torch.tensor(got["metric"].to_numpy(), dtype=torch.float32),
            naive_patch(model, base, source, sites, metric),
            atol=1e-4,
            rtol=0,
        )
    assert noise(model, clean, corrupted, sites[:1], metric)["metric"].item() == pytest.approx(
        naive_patch(model, clean, corrupted, sites[:1], metric).item(), abs=1e-4
    )


def test_frame_columns_forward_count_and_normalisation():
    model = gpt2_like()
    clean, corrupted = token_pair(model, n_pos=5)
    metric = logit_diff(3, 5)
    df = denoise(model, clean, corrupted, ResidPre.every(model, 5), metric)
    assert list(df.columns) == ["site", "layer", "pos", "metric", "normalized"]
    assert len(df) == 15 and df.attrs["n_cells"] == 15
    assert df.attrs["n_forward"] == 1 + model.cfg.n_layers  # the reference runs, then one forward per layer
    # Patching a slice equal in both runs is a no-op that needs no forward: position 0 (before the first
    # corrupted token) in every layer, and in layer 0 (embeddings only) every uncorrupted position.
    noop = (df.pos == 0) | ((df.layer == 0) & df.pos.isin([2, 4]))
    assert df.attrs["n_skipped"] == noop.sum() == 5
    assert (df[noop]["metric"] == df.attrs["base_metric"]).all()
    # Patching every position of resid_pre 0 at once is the clean run; patching nothing is the corrupted one.
    full = patch(model, corrupted, clean, [ResidPre(0)], metric)
    assert full["normalized"].item() == pytest.approx(1.0, abs=1e-5)
    assert full.attrs["source_metric"] == pytest.approx(float(metric(model(clean)[:, -1].detach())), abs=1e-5)
    assert full.attrs["base_metric"] == pytest.approx(
        float(metric(model(corrupted)[:, -1].detach())), abs=1e-5
    )
    head = denoise(model, clean, corrupted, [Head(1, 2, pos=(1, 3))], metric)
    assert list(head.columns) == ["site", "layer", "head", "pos", "metric", "normalized"]


def test_read_positions_and_padded_text():
    model = gpt2_like()
    prompts = ["The capital of France is", "The Eiffel Tower is in the"]
    corrupted = ["The capital of Italy is", "The Eiffel Tower is in a"]
    df = denoise(model, prompts, corrupted, ResidPre.every(model, 7), logit_diff(9, 10))
    tokens, mask = model.to_tokens(prompts, return_attention_mask=True)
    last = mask.sum(-1) - 1  # right padding: each example's metric reads its own last real token

    def metric(logits):
        return logit_diff(9, 10)(logits)

    _, cache = model.run_with_cache(tokens, attention_mask=mask)
    corr_tokens = model.to_tokens(corrupted)
    for _, row in df.sample(5, random_state=0).iterrows():
        site = ResidPre(int(row.layer), int(row.pos))

        def hook(act, hook, site=site):
            act = act.clone()
            act[site.selector] = cache[site.hook_name][site.selector]
            return act

        with torch.no_grad():
            logits = model.run_with_hooks(
                corr_tokens, attention_mask=mask, fwd_hooks=[(site.hook_name, hook)]
            )
        assert row.metric == pytest.approx(float(metric(logits[torch.arange(2), last])), abs=1e-4)


def test_bad_inputs_fail_before_any_forward():
    model = gpt2_like()
    clean, corrupted = token_pair(model, n_pos=6)
    calls = []
    with model.hooks([("hook_embed", lambda x, hook: calls.append(1))]):
        with pytest.raises(ValueError, match="different token lengths"):
            denoise(model, clean, corrupted[:, :5], [ResidPre(0)], logit_diff(1, 2))
        with pytest.raises(ValueError, match="layer 3 out of range"):
            denoise(model, clean, corrupted, [ResidPre(0), Head(3, 0)], logit_diff(1, 2))
        with pytest.raises(ValueError, match="position 6 out of range"):
            denoise(model, clean, corrupted, [ResidPre(0, pos=6)], logit_diff(1, 2))
        with pytest.raises(ValueError, match="no sites"):
            denoise(model, clean, corrupted, [], logit_diff(1, 2))
    assert calls == []
    with pytest.raises(ValueError, match="different token lengths"):
        denoise(model, "The capital of France is", "The capital of France", [ResidPre(0)], logit_diff(1, 2))
