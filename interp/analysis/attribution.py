"""Attribution patching: the first-order estimate of every patch from two forwards and one backward.

The effect of restoring a clean activation in the corrupted run is approximated by
    ΔM ≈ (a_clean − a_corrupted) · ∂M/∂a   (gradient at the corrupted run)
summed over the site's slice and the batch. The corrupted run is the engine's forward with gradients on;
the backward asks autograd for activation gradients only (`torch.autograd.grad` with the activations as
inputs), so no weight gradient is ever computed: the backward costs about one forward, and with the
unembedding done at the read positions only, the whole method costs about three forwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.engine import (
    Input,
    Logits,
    Metric,
    Prompt,
    ReadPos,
    Until,
    call_metric,
    check_aligned,
    forward,
    prepare,
    reference_runs,
    site_scopes,
)
from interp.analysis.metrics import bind, upcast
from interp.analysis.specs import Cell, Embed, Site, cell_row, cell_sites, validate_cells
from interp.hooks import HookPoint
from interp.transformer import HookedTransformer


def attribution_patch(
    model: HookedTransformer,
    clean: Input,
    corrupted: Input,
    sites: Sequence[Cell],
    metric: Metric,
    *,
    read_pos: ReadPos = None,
) -> pd.DataFrame:
    """Estimated denoising effect of each cell; columns: the site's fields, `effect` (ΔM) and `metric`.

    `metric` receives the logits at `read_pos` only (default: each example's last real token),
    [batch, d_vocab]. `metric` = M_corrupted + effect, the estimate of what `denoise` would report for the
    same cell. attrs: n_forward (2), n_backward (1), n_cells, base_metric (M at the corrupted run).
    """
    clean_p, corr_p = prepare(model, clean), prepare(model, corrupted)
    check_aligned(clean_p, corr_p)
    sites = list(sites)
    validate_cells(model, sites, corr_p.n_pos)
    groups = [[s.at(model) for s in cell_sites(c)] for c in sites]
    names = list(dict.fromkeys(s.hook_name for g in groups for s in g))
    metric = bind(metric, model)
    with site_scopes(model, [s for g in groups for s in g]):
        return _attribution(model, clean_p, corr_p, sites, groups, names, metric, read_pos)


def _attribution(
    model: HookedTransformer,
    clean_p: Prompt,
    corr_p: Prompt,
    sites: list[Cell],
    groups: list[list[Site]],
    names: list[str],
    metric: Metric,
    read_pos: ReadPos,
) -> pd.DataFrame:
    # The clean run only has to reach the last block that holds a site.
    last = max(s.layer for g in groups for s in g)
    (clean_run,) = reference_runs(model, [clean_p], names, Until(last + 1))

    def leaf(x: Tensor, hook: HookPoint) -> Tensor | None:
        # A model with frozen weights builds no graph; make the embedding a leaf so one exists anyway.
        return None if x.requires_grad else x.detach().requires_grad_()

    readout = Logits(read_pos)
    logits, acts = forward(
        model, corr_p.tokens, corr_p, readout, keep=names, hooks=[(Embed().hook_name, leaf)], grad=True
    )
    with torch.enable_grad():
        value = upcast(torch.as_tensor(call_metric(metric, logits, readout, corr_p))).mean()
        grads = torch.autograd.grad(value, [acts[n] for n in names], allow_unused=True)
    terms = {  # per-element first-order effects
        n: (clean_run.acts[n] - acts[n].detach()) * (0 if g is None else g)
        for n, g in zip(names, grads, strict=True)
    }
    df = pd.DataFrame([cell_row(c) for c in sites])
    df["effect"] = [sum(float(terms[s.hook_name][s.selector].sum()) for s in g) for g in groups]
    m_corr = float(value.detach())
    df["metric"] = df["effect"] + m_corr
    df.attrs.update(n_forward=2, n_backward=1, n_cells=len(sites), base_metric=m_corr)
    return df


def correlation(approx: pd.DataFrame, exact: pd.DataFrame, column: str = "metric") -> float:
    """Pearson correlation of `column` between two sweeps over the same sites (joined on site columns)."""
    keys = [c for c in approx.columns if c in exact.columns and c not in ("metric", "effect", "normalized")]
    joined = approx.merge(exact, on=keys, suffixes=("_approx", "_exact"))
    if len(joined) != len(approx) or len(joined) < 2:
        raise ValueError(
            f"the two sweeps do not cover the same sites (joined {len(joined)} of {len(approx)} rows)"
        )
    return float(joined[f"{column}_approx"].corr(joined[f"{column}_exact"]))
