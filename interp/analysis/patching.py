"""Activation patching, batched: put each site's activation from a source run into a base run.

Following pyvene's (base, source) convention, `patch` copies the source's activation into the base run.
Denoising runs the corrupted prompt and restores clean activations (`denoise`); noising runs the clean
prompt and inserts corrupted ones (`noise`). Sites are specs from `interp.analysis.specs`:

    df = denoise(model, clean, corrupted, ResidPre.every(model, n_pos), logit_diff(paris, rome))
    df = denoise(model, clean, corrupted, Head.every(model), metric)         # head outputs, all positions

Each cell (a site, or a group of sites patched together) is `patch_from(source)` at its sites, one cell of
the sweep engine (`interp.analysis.engine`). The result has one row per cell and `df.attrs["n_forward"]`
counts the forwards, the reference run (base and source stacked in one batch) included.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from interp.analysis.edits import patch_from
from interp.analysis.engine import Input, Logits, Metric, ReadPos, check_aligned, prepare, scalar, sweep
from interp.analysis.metrics import bind
from interp.analysis.specs import Cell, cell_row, cell_sites, validate_cells
from interp.transformer import HookedTransformer


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

    `metric` receives the logits at `read_pos` only (default: each example's last real token),
    `[batch, d_vocab]` (`[batch, k, d_vocab]` for k read positions), not TransformerLens's all-position logits.
    Columns: the site's fields, `metric`, and `normalized` = (M − M_base) / (M_source − M_base), which is
    NaN on purpose when M_source = M_base (no gap to recover). attrs: n_forward, n_cells, n_skipped (cells
    whose source and base activations are equal, so they need no forward), base_metric, source_metric.
    """
    base_p, source_p = prepare(model, base), prepare(model, source)
    check_aligned(source_p, base_p, ("source", "base"))
    sites = list(sites)
    validate_cells(model, sites, base_p.n_pos)
    metric = bind(metric, model)
    edit = patch_from(source_p)
    run = sweep(
        model,
        base_p,
        [[(s, edit) for s in cell_sites(c)] for c in sites],
        metric,
        readout=Logits(read_pos),
        max_rows=max_rows,
        progress=progress,
        desc="patching",
    )
    m_base, m_source = scalar(run.base), scalar(metric(run.sources[id(source_p)]))
    df = pd.DataFrame([cell_row(c) for c in sites])
    df["metric"] = [scalar(v) for v in run.values]
    gap = m_source - m_base
    df["normalized"] = (df["metric"] - m_base) / gap if gap != 0 else float("nan")
    df.attrs.update(
        n_forward=run.n_forward,
        n_cells=len(sites),
        n_skipped=sum(run.skipped),
        base_metric=m_base,
        source_metric=m_source,
    )
    return df


def denoise(
    model: HookedTransformer, clean: Input, corrupted: Input, sites: Sequence[Cell], metric: Metric, **kwargs
) -> pd.DataFrame:
    """Run the corrupted prompt, restoring one clean activation per cell (what TransformerLens computes).

    `metric` receives the logits at `read_pos` only, [batch, d_vocab]; columns and attrs as in `patch`.
    """
    return patch(model, corrupted, clean, sites, metric, **kwargs)


def noise(
    model: HookedTransformer, clean: Input, corrupted: Input, sites: Sequence[Cell], metric: Metric, **kwargs
) -> pd.DataFrame:
    """Run the clean prompt, inserting one corrupted activation per cell: which sites are necessary.

    `metric` receives the logits at `read_pos` only, [batch, d_vocab]; columns and attrs as in `patch`.
    """
    return patch(model, clean, corrupted, sites, metric, **kwargs)
