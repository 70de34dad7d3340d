"""Attribution patching against central finite differences along (clean − corrupted), in float64."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from analysis_helpers import build, gpt2_like, token_pair

from interp.analysis import (
    MLP,
    Head,
    Neuron,
    ResidMid,
    ResidPre,
    attribution_patch,
    correlation,
    denoise,
    logit_diff,
)


def directional_derivative(model, clean, corrupted, sites, metric, eps=1e-5):
    """d/dε M(corrupted run with a + ε (a_clean − a_corr) at the sites), by central differences."""
    _, clean_cache = model.run_with_cache(clean)
    _, corr_cache = model.run_with_cache(corrupted)

    def run(scale):
        def hook(act, hook):
            act = act.clone()
            for s in sites:
                if s.hook_name == hook.name:
                    delta = clean_cache[s.hook_name] - corr_cache[s.hook_name]
                    act[s.selector] = act[s.selector] + scale * delta[s.selector]
            return act

        with torch.no_grad():
            logits = model.run_with_hooks(corrupted, fwd_hooks=[(s.hook_name, hook) for s in {*sites}])
        return float(metric(logits[:, -1]))

    return (run(eps) - run(-eps)) / (2 * eps)


def test_matches_finite_differences():
    model = build(2, dtype=torch.float64)
    clean, corrupted = token_pair(model, seed=4)
    metric = logit_diff([3, 4], [5, 6])
    cells = [ResidPre(0, 1), ResidMid(2, 3), Head(1, 2), Head(0, 1, pos=5, part="q"), Head(1, 3, part="pattern"),
             MLP(2, 5), Neuron(1, 7, pos=3), [Head(0, 0), MLP(1)]]  # fmt: skip
    df = attribution_patch(model, clean, corrupted, cells, metric)
    for cell, effect in zip(cells, df["effect"], strict=True):
        sites = cell if isinstance(cell, list) else [cell]
        expected = directional_derivative(model, clean, corrupted, sites, metric)
        assert effect == pytest.approx(expected, rel=1e-4, abs=1e-8), cell
    assert df.attrs["n_forward"] == 2 and df.attrs["n_backward"] == 1
    assert df["metric"].tolist() == pytest.approx((df["effect"] + df.attrs["base_metric"]).tolist())


def test_frozen_weights_and_no_weight_gradients():
    model = build(3)
    for p in model.parameters():
        p.requires_grad_(False)
    clean, corrupted = token_pair(model)
    df = attribution_patch(model, clean, corrupted, ResidPre.every(model, 6), logit_diff(1, 2))
    assert df["effect"].abs().sum() > 0  # a graph was built although no weight requires grad
    model = gpt2_like()
    attribution_patch(model, clean, corrupted, Head.every(model), logit_diff(1, 2))
    assert all(p.grad is None for p in model.parameters())


def test_correlation_with_exact_patching():
    model = gpt2_like()
    clean, corrupted = token_pair(model)
    sites = ResidPre.every(model, 6)
    approx = attribution_patch(model, clean, corrupted, sites, logit_diff(3, 4))
    exact = denoise(model, clean, corrupted, sites, logit_diff(3, 4))
    r = correlation(approx, exact)
    assert -1 <= r <= 1
    assert correlation(exact, exact) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="do not cover the same sites"):
        correlation(approx, exact.iloc[:5])


def test_correlation_is_pearson_over_the_joined_sites():
    """Rows are matched by site, not by order; the value is Pearson's r, so it can be anything in [-1, 1]."""
    approx = pd.DataFrame({"site": "resid_pre", "layer": [0, 0, 1, 1], "pos": [0, 1, 0, 1],
                           "metric": [1.0, 2.0, 3.0, 4.0]})  # fmt: skip
    exact = approx.iloc[::-1].assign(metric=[5.0, 2.0, 3.0, 1.0])  # by site: 1, 3, 2, 5
    assert correlation(approx, exact) == pytest.approx(np.corrcoef([1, 2, 3, 4], [1, 3, 2, 5])[0, 1])
    assert correlation(approx, approx.assign(metric=-approx["metric"])) == pytest.approx(-1.0)
    model = gpt2_like()
    clean, corrupted = token_pair(model)
    sites = ResidPre.every(model, 6)
    a = attribution_patch(model, clean, corrupted, sites, logit_diff(3, 4))
    e = denoise(model, clean, corrupted, sites, logit_diff(3, 4))
    assert correlation(a, e) == pytest.approx(np.corrcoef(a["metric"], e["metric"])[0, 1])
    assert correlation(a, e) < 0.999999  # a first-order estimate is not exact on this random model
