"""Logit lens against the real logits and a hand-applied unembedding; DLA sums against the logit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from analysis_helpers import gpt2_like, llama_like, token_pair

from interp.analysis import direct_logit_attribution, logit_lens


@pytest.mark.parametrize("make", [gpt2_like, llama_like], ids=["gpt2", "llama-gqa"])
def test_logit_lens_last_layer_is_the_real_output(make):
    model = make()
    tokens, _ = token_pair(model, batch=2, n_pos=5)
    df = logit_lens(model, tokens, k=3)
    n = model.cfg.n_layers
    assert len(df) == 2 * (n + 1) * 5
    final = df[df.layer == n]
    logp = model(tokens).log_softmax(-1).detach()
    top = logp.topk(3, dim=-1)
    assert final["top_ids"].tolist() == top.indices.flatten(0, 1).tolist()
    torch.testing.assert_close(torch.tensor(final["top_probs"].tolist()), top.values.exp().flatten(0, 1))
    assert (final["target_rank"] == 0).all() and final["kl_to_final"].abs().max() < 1e-6
    torch.testing.assert_close(
        torch.tensor(final["target_prob"].tolist()), top.values[..., 0].exp().flatten()
    )
    # an intermediate layer, unembedded by hand
    _, cache = model.run_with_cache(tokens)
    with torch.no_grad():
        lp = model.unembed(model.ln_final(cache["resid_pre", 1])).log_softmax(-1)
    row = df[(df.layer == 1) & (df.example == 1) & (df.pos == 2)].iloc[0]
    t = row.target
    assert row.target_prob == pytest.approx(lp[1, 2, t].exp().item(), abs=1e-6)
    assert row.target_rank == int((lp[1, 2] > lp[1, 2, t]).sum())
    assert row.kl_to_final == pytest.approx(
        (logp[1, 2].exp() * (logp[1, 2] - lp[1, 2])).sum().item(), abs=1e-5
    )


def test_logit_lens_with_a_target_and_tokens():
    model = gpt2_like()
    df = logit_lens(model, "The capital of France is", answer=9, read_pos=[-1])
    assert (df["target"] == 9).all() and df["pos"].unique().tolist() == [5]
    assert isinstance(df["top_tokens"].iloc[0][0], str)
    with pytest.raises(ValueError, match="positions \\[8\\] out of range"):
        logit_lens(model, "The capital of France is", read_pos=[8])


@pytest.mark.parametrize("make", [gpt2_like, llama_like], ids=["gpt2", "llama-gqa"])
def test_direct_logit_attribution_sums_to_the_logit(make):
    model = make()
    tokens, _ = token_pair(model, batch=2, n_pos=5)
    df = direct_logit_attribution(model, tokens, answer=[3, 4])
    logits = model(tokens)[:, -1].detach()
    assert df.attrs["logit"] == pytest.approx(logits[[0, 1], [3, 4]].mean().item(), abs=1e-5)
    assert df["attribution"].sum() + df.attrs["constant"] == pytest.approx(df.attrs["logit"], abs=1e-4)
    assert (df.component == "head").sum() == model.cfg.n_layers * model.cfg.n_heads
    diff = direct_logit_attribution(model, tokens, answer=3, incorrect=5, neurons=True)
    assert diff.attrs["logit"] == pytest.approx((logits[:, 3] - logits[:, 5]).mean().item(), abs=1e-5)
    assert diff["attribution"].sum() + diff.attrs["constant"] == pytest.approx(diff.attrs["logit"], abs=1e-4)
    # each layer's neurons (plus b_out) add up to that MLP's row in the per-layer attribution
    per_mlp = direct_logit_attribution(model, tokens, answer=3, incorrect=5)
    for layer in range(model.cfg.n_layers):
        parts = diff[(diff.layer == layer) & diff.component.isin(["neuron", "mlp_bias"])]["attribution"].sum()
        whole = per_mlp[(per_mlp.layer == layer) & (per_mlp.component == "mlp")]["attribution"].item()
        assert parts == pytest.approx(whole, abs=1e-4)


def test_last_position_in_a_padded_batch_matches_single_runs():
    model = gpt2_like()
    prompts = ["The capital of France is", "The capital"]
    batch = logit_lens(model, prompts, read_pos=None)
    assert len(batch) == 2 * (model.cfg.n_layers + 1)
    for i, p in enumerate(prompts):
        alone = logit_lens(model, p, read_pos=-1)
        rows = batch[batch["example"] == i].reset_index(drop=True)
        assert rows["pos"].tolist() == alone["pos"].tolist()
        np.testing.assert_allclose(rows["target_prob"], alone["target_prob"], atol=1e-5)
    full = logit_lens(model, prompts)  # padding positions get no rows
    n_real = [len(model.to_tokens(p)[0]) for p in prompts]
    assert len(full) == sum(n_real) * (model.cfg.n_layers + 1)
