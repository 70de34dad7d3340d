"""Metrics name tokens by id or by string; strings are bound to a model's tokenizer, ids are range-checked."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.analysis import (
    MLP,
    Resid,
    ablation_sweep,
    denoise,
    log_prob,
    logit_diff,
    normalized,
    prob,
    run_ablated,
)
from interp.analysis.metrics import UnboundMetric, bind


@pytest.fixture(scope="module")
def model():
    return interp.load()  # the embedded model: it has a tokenizer


CLEAN, CORRUPTED = "The capital of France is", "The capital of Italy is"


@pytest.mark.parametrize("bad", [-1, 10**6, [3, -2]])
def test_token_ids_out_of_range(bad):
    logits = torch.randn(2, 50)
    with pytest.raises(ValueError, match=r"out of range: ids must lie in \[0, 50\)"):
        prob(bad)(logits)
    with pytest.raises(ValueError, match=r"out of range"):
        logit_diff(1, bad)(logits)
    torch.testing.assert_close(prob(49)(logits), logits.softmax(-1)[:, 49].mean())


def test_string_metric_is_unbound_until_bound(model):
    metric = logit_diff(" Paris", " Rome")
    assert isinstance(metric, UnboundMetric)
    logits = torch.randn(3, model.cfg.d_vocab)
    with pytest.raises(TypeError, match=r"logit_diff\(' Paris', ' Rome'\) names tokens by string.*bind"):
        metric(logits)
    paris, rome = model.to_single_token(" Paris"), model.to_single_token(" Rome")
    bound = bind(metric, model)
    torch.testing.assert_close(bound(logits), (logits[:, paris] - logits[:, rome]).mean())
    per_example = bind(log_prob([" Paris", " Rome", rome], reduce=False), model)
    torch.testing.assert_close(
        per_example(logits), logits.log_softmax(-1)[torch.arange(3), [paris, rome, rome]]
    )
    plain = prob(paris)
    assert bind(plain, model) is plain  # a plain callable is returned unchanged


def test_string_metric_needs_single_tokens(model):
    with pytest.raises(ValueError, match=r"expected exactly one"):
        bind(prob(" Parisian capital"), model)


def test_analyses_bind_string_metrics(model):
    """The README's `denoise(..., logit_diff(" Paris", " Rome"))` equals the same call with ids."""
    paris, rome = model.to_single_token(" Paris"), model.to_single_token(" Rome")
    n_pos = model.to_tokens(CLEAN).shape[1]
    sites = Resid.every(model, n_pos)
    by_text = denoise(model, CLEAN, CORRUPTED, sites, logit_diff(" Paris", " Rome"))
    by_id = denoise(model, CLEAN, CORRUPTED, sites, logit_diff(paris, rome))
    assert by_text.equals(by_id) and by_text["metric"].abs().max() > 0
    norm = normalized(logit_diff(" Paris", " Rome"), clean=by_id.attrs["source_metric"], corrupted=0.0)
    assert isinstance(norm, UnboundMetric)
    torch.testing.assert_close(
        bind(norm, model)(torch.ones(1, model.cfg.d_vocab)),
        torch.tensor(0.0),  # logit diff 0 -> recovery 0
    )
    sweep_text = ablation_sweep(model, CLEAN, [MLP(0), MLP(1)], prob(" Paris"))
    sweep_id = ablation_sweep(model, CLEAN, [MLP(0), MLP(1)], prob(paris))
    assert sweep_text.equals(sweep_id)
    assert (
        run_ablated(model, CLEAN, [MLP(0)], prob(" Paris")).metric
        == run_ablated(model, CLEAN, [MLP(0)], prob(paris)).metric
    )
