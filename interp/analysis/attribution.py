"""Attribution patching: the first-order estimate of every patch from two forwards and one backward.

The effect of restoring a clean activation in the corrupted run is approximated by
    ΔM ≈ (a_clean − a_corrupted) · ∂M/∂a   (gradient at the corrupted run)
summed over the site's slice and the batch. The backward asks autograd for activation gradients only
(`torch.autograd.grad` with the activations as inputs), so no weight gradient is ever computed: the
backward costs about one forward, and with the unembedding done at the read positions only, the whole
method costs about three forwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.metrics import bind, upcast
from interp.analysis.runner import (
    Input,
    Metric,
    Prompt,
    ReadPos,
    check_aligned,
    prepare,
    read_index,
    unembed_at,
)
from interp.analysis.specs import Cell, cell_row, cell_sites, validate_cells
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

    `metric` = M_corrupted + effect, the estimate of what `denoise` would report for the same cell.
    attrs: n_forward (2), n_backward (1), n_cells, base_metric (M at the corrupted run).
    """
    metric = bind(metric, model)  # a string metric gets its token ids from this model's tokenizer
    clean_p, corr_p = prepare(model, clean), prepare(model, corrupted)
    check_aligned(clean_p, corr_p)
    sites = list(sites)
    validate_cells(model, sites, corr_p.n_pos)
    groups = [cell_sites(c) for c in sites]
    names = list(dict.fromkeys(s.hook_name for g in groups for s in g))
    index = read_index(corr_p, read_pos)
    # The clean run only has to reach the last block that holds a site.
    last = max(s.layer for g in groups for s in g)
    store: dict[str, Tensor] = {}

    def save(x: Tensor, hook: HookPoint) -> None:
        store[hook.name] = x.detach().clone()

    with torch.no_grad(), model.hooks([(n, save) for n in names]):
        model(clean_p.tokens, attention_mask=clean_p.mask, stop_at_layer=last + 1)
    clean_acts = store
    acts, m_corr, grads = _corrupted_grads(model, corr_p, names, metric, index)
    terms = {n: (clean_acts[n] - acts[n]) * grads[n] for n in names}  # per-element first-order effects
    effects = [sum(float(terms[s.hook_name][s.selector].sum()) for s in g) for g in groups]
    df = pd.DataFrame([cell_row(c) for c in sites])
    df["effect"] = effects
    df["metric"] = df["effect"] + m_corr
    df.attrs.update(n_forward=2, n_backward=1, n_cells=len(sites), base_metric=m_corr)
    return df


def _corrupted_grads(
    model: HookedTransformer, prompt: Prompt, names: list[str], metric: Metric, index: Tensor | list[int]
) -> tuple[dict[str, Tensor], float, dict[str, Tensor]]:
    acts: dict[str, Tensor] = {}

    def keep(x: Tensor, hook: HookPoint) -> None:
        acts[hook.name] = x

    def leaf(x: Tensor, hook: HookPoint) -> Tensor | None:
        # A model with frozen weights builds no graph; make the embedding a leaf so one exists anyway.
        return None if x.requires_grad else x.detach().requires_grad_()

    with torch.enable_grad(), model.hooks([("hook_embed", leaf), *[(n, keep) for n in names]]):
        resid = model(prompt.tokens, attention_mask=prompt.mask, stop_at_layer=model.cfg.n_layers)
        value = upcast(torch.as_tensor(metric(unembed_at(model, resid, index)))).mean()
        grads = torch.autograd.grad(value, [acts[n] for n in names], allow_unused=True)
    out = {n: torch.zeros_like(acts[n]) if g is None else g for n, g in zip(names, grads, strict=True)}
    return {n: a.detach() for n, a in acts.items()}, float(value.detach()), out


def correlation(approx: pd.DataFrame, exact: pd.DataFrame, column: str = "metric") -> float:
    """Pearson correlation of `column` between two sweeps over the same sites (joined on site columns)."""
    keys = [c for c in approx.columns if c in exact.columns and c not in ("metric", "effect", "normalized")]
    joined = approx.merge(exact, on=keys, suffixes=("_approx", "_exact"))
    if len(joined) != len(approx) or len(joined) < 2:
        raise ValueError(
            f"the two sweeps do not cover the same sites (joined {len(joined)} of {len(approx)} rows)"
        )
    return float(joined[f"{column}_approx"].corr(joined[f"{column}_exact"]))
