"""Linear probes: the fit against a hand-written Newton solver, per-layer accuracy against activations read
prompt by prompt, and probe patching against a hand-written hooked forward."""

from __future__ import annotations

import pytest
import torch
from analysis_helpers import gpt2_like

from interp.analysis import Head, Resid
from interp.analysis.probe import fit_probe, probe_layers, probe_patch

L2 = 1e-2


def newton_logistic(z: torch.Tensor, y: torch.Tensor, l2: float, steps: int = 50) -> torch.Tensor:
    """argmin mean BCE(z w + b, y) + l2 |w|² by Newton's method in float64; returns [w..., b]."""
    X = torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1)
    theta = torch.zeros(X.shape[1], dtype=z.dtype)
    reg = torch.full((X.shape[1],), 2 * l2, dtype=z.dtype)
    reg[-1] = 0.0  # the bias is not penalised
    for _ in range(steps):
        p = torch.sigmoid(X @ theta)
        grad = X.T @ (p - y) / len(y) + reg * theta
        hess = X.T @ (X * (p * (1 - p))[:, None]) / len(y) + torch.diag(reg)
        theta = theta - torch.linalg.solve(hess, grad)
    return theta


def test_fit_matches_newtons_method():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=gen) * torch.tensor([1.0, 3.0, 0.5, 2.0, 1.0]) + 2.0
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * torch.randn(200, generator=gen) > 0.5).float()
    probe = fit_probe(x, y, l2=L2)
    z = ((x - x.mean(0)) / (x.std(0) + 1e-6)).double()
    theta = newton_logistic(z, y.double(), L2)
    torch.testing.assert_close(probe.w.double(), theta[:-1], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(probe.b.double(), theta[-1:], atol=1e-4, rtol=1e-4)
    margin = z @ theta[:-1] + theta[-1]
    assert probe.accuracy(x, y) == pytest.approx(float(((margin > 0).double() == y).double().mean()))
    assert probe.accuracy(x, y) > 0.9


def test_fit_rejects_bad_shapes():
    with pytest.raises(ValueError, match="x \\[n, d\\] and y \\[n\\]"):
        fit_probe(torch.zeros(4, 3), torch.zeros(5))


PROMPTS = ["The capital of France is", "I love Paris", "The city of Rome is in Italy", "I hate you",
           "The Eiffel Tower is in Paris", "you love the city", "The capital of Italy is Rome", "I love you"]  # fmt: skip
LABELS = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])


@torch.no_grad()
def test_probe_layers_reads_each_prompts_own_position():
    model = gpt2_like()
    pos = torch.tensor([len(model.to_str_tokens(p)) - 1 for p in PROMPTS])  # last real token, padded batch
    train = torch.tensor([True] * 6 + [False] * 2)
    sites = [Resid(0), Resid(2, stage="mid"), Resid(2, stage="post")]
    df, probes = probe_layers(model, PROMPTS, sites, pos, LABELS, train)
    assert df[["site", "layer"]].values.tolist() == [["resid_pre", 0], ["resid_mid", 2], ["resid_post", 2]]
    for site, row, probe in zip(sites, df.itertuples(), probes, strict=True):
        # Reference: each prompt alone (no padding), its last position, the probe fitted on those rows.
        x = torch.stack([model.run_with_cache(p)[1][site.hook_name][0, -1] for p in PROMPTS])
        ref = fit_probe(x[train], LABELS[train])
        # Padded and unpadded forwards differ in the last float bits; six rows in 32 dims amplify that a little.
        torch.testing.assert_close(probe.w, ref.w, atol=1e-3, rtol=1e-2)
        assert row.train_acc == ref.accuracy(x[train], LABELS[train])
        assert row.test_acc == ref.accuracy(x[~train], LABELS[~train])
    assert (df.chance == 0.5).all() and (df.n_train == 6).all() and (df.n_test == 2).all()


def test_probe_layers_needs_held_out_rows():
    model = gpt2_like()
    pos = torch.full((8,), 2)
    with pytest.raises(ValueError, match="held-out"):
        probe_layers(model, PROMPTS, [Resid(0)], pos, LABELS, torch.ones(8, dtype=torch.bool))


@torch.no_grad()
def test_probe_patch_equals_a_hand_written_hooked_forward():
    model = gpt2_like()
    base, source = ["The capital of France is", "I love you"], ["The capital of Italy is", "I hate you"]
    gen = torch.Generator().manual_seed(3)
    direction = torch.randn(model.cfg.d_model, generator=gen)
    readout = lambda r: r @ direction  # noqa: E731
    sites = [Resid(1, pos=3), Head(0, 2, pos=3), [Resid(2, pos=3), Head(2, 1)]]
    df = probe_patch(model, base, source, sites, readout, read_pos=3)
    b, s = model.to_tokens(base), model.to_tokens(source)
    _, cache = model.run_with_cache(s)

    def hand(cell: list) -> float:
        def copy(site):
            def hook(act, hook):
                act = act.clone()
                act[site.selector] = cache[site.hook_name][site.selector]
                return act

            return (site.hook_name, hook)

        with model.hooks([copy(site) for site in cell]):
            final = model(b, stop_at_layer=model.cfg.n_layers)
        return float((final[:, 3] @ direction).mean())

    expected = [hand([sites[0]]), hand([sites[1]]), hand(sites[2])]
    assert df["metric"].tolist() == pytest.approx(expected, abs=1e-5)
    assert df.attrs["base_metric"] == pytest.approx(hand([]), abs=1e-5)
    # Restoring the whole final residual at the read position gives the source run's readout exactly.
    last = probe_patch(model, base, source, [Resid(2, pos=3, stage="post")], readout, read_pos=3)
    assert last["metric"][0] == pytest.approx(last.attrs["source_metric"], abs=1e-5)
    assert last.attrs["source_metric"] != pytest.approx(last.attrs["base_metric"], abs=1e-3)


def test_probe_patch_needs_aligned_runs():
    model = gpt2_like()
    with pytest.raises(ValueError, match="line up"):
        probe_patch(
            model, "I love you", "The capital of France is", [Resid(0, 1)], lambda r: r.sum(-1), read_pos=1
        )
