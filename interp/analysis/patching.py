"""Activation patching, batched: put each site's activation from a source run into a base run.

Following pyvene's (base, source) convention, `patch` copies the source's activation into the base run.
Denoising runs the corrupted prompt and restores clean activations (`denoise`); noising runs the clean
prompt and inserts corrupted ones (`noise`). Sites are specs from `interp.analysis.specs`:

    df = denoise(model, clean, corrupted, Resid.every(model, n_pos), logit_diff(paris, rome))
    df = denoise(model, clean, corrupted, Head.every(model), metric)         # head outputs, all positions

Every cell (a site, or a group of sites patched together) is an edited copy of the base run; copies are
stacked along the batch axis and each forward starts at the patched block (see `runner`). The result has
one row per cell and `df.attrs["n_forward"]` counts the forwards, the reference run (base and source
stacked in one batch) included.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.metrics import bind
from interp.analysis.runner import (
    CellRun,
    Edit,
    Input,
    Metric,
    Prompt,
    ReadPos,
    cached_run,
    check_aligned,
    edits_by_hook,
    prepare,
    read_index,
    run_cells,
    scalar,
)
from interp.analysis.specs import Cell, Selector, cell_row, cell_sites, validate_cells
from interp.transformer import HookedTransformer


def copy_edit(source: Tensor, selector: Selector) -> Edit:
    """An edit that overwrites the selected slice with the same slice of `source` ([B, ...])."""

    def edit(rows: Tensor) -> None:
        rows[selector] = source[selector]

    return edit


def patch(
    model: HookedTransformer,
    base: Input,
    source: Input,
    sites: Sequence[Cell],
    metric: Metric,
    *,
    read_pos: ReadPos = None,
    max_rows: int = 256,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Metric of the base run with each cell's activations taken from the source run, one row per cell.

    `metric` receives the logits at `read_pos` (default: each example's last real token), `[batch, d_vocab]`.
    Columns: the site's fields, `metric`, and `normalized` = (M − M_base) / (M_source − M_base).
    attrs: n_forward, n_cells, n_skipped (cells whose source and base activations are equal, so they
    need no forward), base_metric, source_metric.
    """
    metric = bind(metric, model)  # a string metric gets its token ids from this model's tokenizer
    base_p, source_p = prepare(model, base), prepare(model, source)
    check_aligned(source_p, base_p, ("source", "base"))
    sites = list(sites)
    validate_cells(model, sites, base_p.n_pos)
    index = read_index(base_p, read_pos)
    groups = [cell_sites(c) for c in sites]
    starts = [min(s.layer for s in g) for g in groups]
    names = [s.hook_name for g in groups for s in g]
    # Both reference runs in one forward of 2B rows: bigger matmuls, one pass over the weights.
    B = base_p.batch
    mask = None if base_p.mask is None else torch.cat([base_p.mask, source_p.mask])
    both = Prompt(torch.cat([base_p.tokens, source_p.tokens]), mask)
    resid_names = [f"blocks.{layer}.hook_resid_pre" for layer in set(starts)]
    run = cached_run(
        model, both, [*resid_names, *names], index.repeat(2) if isinstance(index, Tensor) else index
    )
    base_resid = {name: run.cache[name][:B] for name in resid_names}
    base_acts = {name: run.cache[name][:B] for name in names}
    source = {name: run.cache[name][B:] for name in names}
    # A cell whose source slice equals the base slice (e.g. any position before the first corrupted token)
    # cannot change the run; it gets the base metric without a forward.
    live = [
        i
        for i, g in enumerate(groups)
        if not all(
            torch.equal(source[s.hook_name][s.selector], base_acts[s.hook_name][s.selector]) for s in g
        )
    ]
    cells = [
        CellRun(
            starts[i],
            edits_by_hook([(s.hook_name, copy_edit(source[s.hook_name], s.selector)) for s in groups[i]]),
        )
        for i in live
    ]
    values, n_forward = run_cells(
        model,
        base_p,
        lambda layer: base_resid[f"blocks.{layer}.hook_resid_pre"],
        cells,
        metric,
        index,
        max_rows=max_rows,
        progress=progress,
        desc="patching",
    )
    m_base, m_source = scalar(metric(run.logits[:B])), scalar(metric(run.logits[B:]))
    metrics = [m_base] * len(sites)
    for i, v in zip(live, values, strict=True):
        metrics[i] = scalar(v)
    df = pd.DataFrame([cell_row(c) for c in sites])
    df["metric"] = metrics
    gap = m_source - m_base
    df["normalized"] = (df["metric"] - m_base) / gap if gap != 0 else float("nan")
    df.attrs.update(
        n_forward=n_forward + 1,
        n_cells=len(sites),
        n_skipped=len(sites) - len(live),
        base_metric=m_base,
        source_metric=m_source,
    )
    return df


def denoise(
    model: HookedTransformer, clean: Input, corrupted: Input, sites: Sequence[Cell], metric: Metric, **kwargs
) -> pd.DataFrame:
    """Run the corrupted prompt, restoring one clean activation per cell (what TransformerLens computes)."""
    return patch(model, corrupted, clean, sites, metric, **kwargs)


def noise(
    model: HookedTransformer, clean: Input, corrupted: Input, sites: Sequence[Cell], metric: Metric, **kwargs
) -> pd.DataFrame:
    """Run the clean prompt, inserting one corrupted activation per cell: which sites are necessary."""
    return patch(model, clean, corrupted, sites, metric, **kwargs)
