"""Ablation against forwards of hand-edited weights (deep copies), and its batched sweep against single runs."""

from __future__ import annotations

import copy

import pytest
import torch
from analysis_helpers import gpt2_like, llama_like, token_pair

from interp.analysis import MLP, Attn, Head, Neuron, ResidPre, ablate, ablation_sweep, logit_diff, run_ablated


def edited(model, fn):
    model = copy.deepcopy(model)
    with torch.no_grad():
        fn(model)
    return model


@pytest.mark.parametrize("make", [gpt2_like, llama_like], ids=["gpt2", "llama-gqa"])
def test_zero_ablation_equals_zeroed_weights(make):
    model = make()
    tokens, _ = token_pair(model)

    def no_head(m):
        m.blocks[1].attn.W_O[2] = 0  # the head's output is z @ W_O[2]; b_O stays

    def no_mlp(m):
        m.blocks[2].mlp.W_out.zero_()
        if m.blocks[2].mlp.b_out is not None:
            m.blocks[2].mlp.b_out.zero_()

    def no_neuron(m):
        m.blocks[0].mlp.W_out[5] = 0

    for site, fn in ((Head(1, 2), no_head), (MLP(2), no_mlp), (Neuron(0, 5), no_neuron)):
        with ablate(model, site), torch.no_grad():
            got = model(tokens)
        torch.testing.assert_close(got, edited(model, fn)(tokens).detach(), atol=1e-5, rtol=0)


def test_mean_ablation_over_positions_equals_a_bias():
    model = gpt2_like()
    tokens, reference = token_pair(model, seed=3)
    _, cache = model.run_with_cache(reference)
    mean_z = cache["z", 1][:, :, 2].mean((0, 1))  # [d_head]

    def fold(m):  # a constant head output is the same as a bias of that value
        m.blocks[1].attn.b_O += mean_z @ m.blocks[1].attn.W_O[2]
        m.blocks[1].attn.W_O[2] = 0

    out = run_ablated(model, tokens, [Head(1, 2)], method="mean", reference=reference, per_position=False)
    torch.testing.assert_close(out.logits, edited(model, fold)(tokens).detach(), atol=1e-5, rtol=0)


def test_mean_and_resample_against_hand_written_hooks():
    model = gpt2_like()
    tokens, reference = token_pair(model, seed=3)
    _, cache = model.run_with_cache(reference)
    mean = cache["resid_pre", 2].mean(0)  # per position

    def mean_hook(act, hook):
        act = act.clone()
        act[:, 4] = mean[4]
        return act

    expected = model.run_with_hooks(tokens, fwd_hooks=[("blocks.2.hook_resid_pre", mean_hook)])
    got = run_ablated(model, tokens, ResidPre(2, pos=4), method="mean", reference=reference)
    torch.testing.assert_close(got.logits, expected.detach(), atol=1e-5, rtol=0)

    one = reference[:1]  # resampling from a single reference example always picks it
    _, cache = model.run_with_cache(one)

    def resample_hook(act, hook):
        act = act.clone()
        act[:, :, 1] = cache["v", 0][:, :, 1]
        return act

    expected = model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.attn.hook_v", resample_hook)])
    got = run_ablated(model, tokens, Head(0, 1, part="v"), method="resample", reference=one)
    torch.testing.assert_close(got.logits, expected.detach(), atol=1e-5, rtol=0)


def test_resample_is_seeded():
    model = gpt2_like()
    tokens, reference = token_pair(model, batch=4, seed=5)
    a = run_ablated(model, tokens, Attn(1), method="resample", reference=reference, seed=1).logits
    b = run_ablated(model, tokens, Attn(1), method="resample", reference=reference, seed=1).logits
    c = run_ablated(model, tokens, Attn(1), method="resample", reference=reference, seed=2).logits
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("method", ["zero", "mean"])
def test_sweep_equals_one_ablation_at_a_time(method):
    model = gpt2_like()
    tokens, reference = token_pair(model, seed=2)
    metric = logit_diff(3, 4)
    sites = [*Head.every(model), MLP(0), Neuron(2, 3, pos=-1), [Head(0, 0), Attn(2, pos=1)]]
    df = ablation_sweep(model, tokens, sites, metric, method, reference=reference, max_rows=8)
    for cell, value in zip(sites, df["metric"], strict=True):
        single = run_ablated(model, tokens, cell, metric, method, reference=reference).metric
        assert value == pytest.approx(single, abs=1e-5)
    assert df["effect"].tolist() == pytest.approx((df["metric"] - df.attrs["base_metric"]).tolist())
    assert df.attrs["base_metric"] == pytest.approx(float(metric(model(tokens)[:, -1].detach())), abs=1e-5)


def test_hooks_are_removed_and_errors_are_clear():
    model = gpt2_like()
    tokens, _ = token_pair(model)
    with pytest.raises(RuntimeError, match="boom"):
        with ablate(model, [Head(0, 1), MLP(1)]):
            assert model.hook_count() == 2
            raise RuntimeError("boom")
    assert model.hook_count() == 0
    with pytest.raises(ValueError, match="mean ablation needs a reference batch"):
        with ablate(model, Head(0, 1), method="mean"):
            pass
    with pytest.raises(ValueError, match="method must be 'zero', 'mean' or 'resample'"):
        run_ablated(model, tokens, Head(0, 1), method="median")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="head 9 out of range"):
        run_ablated(model, tokens, Head(0, 9))
    with pytest.raises(
        ValueError, match="reference has 4 positions but this run has 6; mean-ablating a pattern"
    ):
        run_ablated(model, tokens, Head(1, 0, part="pattern"), method="mean", reference=tokens[:, :4])
    assert model.hook_count() == 0


def test_mean_over_padded_references_ignores_padding():
    """The mean of a padded reference batch equals the mean of the same prompts run one by one."""
    model = gpt2_like()
    refs = ["The capital of France is Paris", "The capital"]
    site = MLP(1)
    with torch.no_grad():
        acts = [model.run_with_cache(r, names_filter=site.hook_name)[1][site.hook_name][0] for r in refs]
    per_pos = torch.stack([a.sum(0) for a in acts]).sum(0) / sum(a.shape[0] for a in acts)

    def reference_hook(act, hook):
        act = act.clone()
        act[:] = per_pos
        return act

    prompt = "The capital of Italy is"
    with torch.no_grad():
        expected = model.run_with_hooks(prompt, fwd_hooks=[(site.hook_name, reference_hook)])
    got = run_ablated(model, prompt, [site], method="mean", reference=refs, per_position=False).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_resample_rejects_padded_references_and_positions_are_checked():
    model = gpt2_like()
    with pytest.raises(ValueError, match="one token length"):
        run_ablated(model, "The capital", [MLP(0)], method="resample", reference=["The capital of", "Paris"])
    with pytest.raises(ValueError, match="position 9 out of range for a 3-token input"):
        run_ablated(model, "The capital", [MLP(0, pos=9)])
    assert model.hook_count() == 0
