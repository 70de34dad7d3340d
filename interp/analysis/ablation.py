"""Zero, mean and resample ablation of heads, attention layers, MLPs, neurons and residual positions.

    with ablate(model, [Head(9, 6), Neuron(3, 117)], mean_of(other_prompts)):
        logits = model(tokens)                                     # any forward inside is ablated
    out = run_ablated(model, tokens, [MLP(0)], metric=prob(answer))  # one call: logits and metric
    df = ablation_sweep(model, tokens, Head.every(model), metric)    # each head on its own, batched

`method` is an edit from `interp.analysis.edits` (`zero()`, `mean_of(reference)`, `resample_from(reference)`
or any other), or one of the older strings "zero", "mean", "resample" with `reference=`:
- zero: the slice becomes 0. For a head this removes z, hence the head's whole output except b_O.
- mean: the mean over a reference batch's real tokens, per position by default (`per_position=False` also
  averages over positions, which is what a constant replacement such as a bias would do).
- resample: each example gets the activation of a random reference example (seeded).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.edits import Edit, EditFn, mean_of, resample_from, zero
from interp.analysis.engine import (
    Input,
    Logits,
    Metric,
    ReadPos,
    Until,
    edited,
    forward,
    prepare,
    scalar,
    sweep,
)
from interp.analysis.metrics import bind
from interp.analysis.specs import Cell, Site, cell_row, cell_sites, validate_cells
from interp.transformer import HookedTransformer

Method = Literal["zero", "mean", "resample"] | Edit | EditFn


def ablation_edit(
    method: Method = "zero", reference: Input | None = None, per_position: bool = True, seed: int = 0
) -> Edit | EditFn:
    """The edit a `method` names: an edit as it is, or "zero" / "mean" / "resample" over `reference`."""
    if not isinstance(method, str):
        return method
    if method not in ("zero", "mean", "resample"):
        raise ValueError(f"ablation method must be 'zero', 'mean' or 'resample', got {method!r}")
    if method == "zero":
        return zero()
    if reference is None:
        raise ValueError(f"{method} ablation needs a reference batch (reference=...)")
    return mean_of(reference, per_position) if method == "mean" else resample_from(reference, seed)


@contextmanager
def ablate(
    model: HookedTransformer,
    sites: Site | Sequence[Site],
    method: Method = "zero",
    reference: Input | None = None,
    *,
    per_position: bool = True,
    seed: int = 0,
) -> Iterator[HookedTransformer]:
    """Every forward inside the block runs with the sites ablated; the hooks go when the block ends."""
    edit = ablation_edit(method, reference, per_position, seed)
    with edited(model, [(s, edit) for s in cell_sites(sites)]):
        yield model


@dataclass(frozen=True)
class AblationRun:
    logits: Tensor  # [batch, pos, d_vocab]
    metric: float | None  # the metric at the read positions, when one was given


def run_ablated(
    model: HookedTransformer,
    input: Input,
    sites: Site | Sequence[Site],
    metric: Metric | None = None,
    method: Method = "zero",
    reference: Input | None = None,
    *,
    read_pos: ReadPos = None,
    per_position: bool = True,
    seed: int = 0,
) -> AblationRun:
    """One ablated forward: its logits, and the metric on the logits at `read_pos` if a metric is given.

    `metric` receives the logits at `read_pos` only (default: each example's last real token), [batch, d_vocab].
    """
    prompt = prepare(model, input)
    validate_cells(model, [cell_sites(sites)], prompt.n_pos)
    with ablate(model, sites, method, reference, per_position=per_position, seed=seed):
        resid, _ = forward(model, prompt.tokens, prompt, Until())
    with torch.no_grad():
        logits = model.unembed(model.ln_final(resid))
        value = None
        if metric is not None:
            value = scalar(bind(metric, model)(Logits(read_pos).read(model, resid, {}, prompt)))
    return AblationRun(logits, value)


def ablation_sweep(
    model: HookedTransformer,
    input: Input,
    sites: Sequence[Cell],
    metric: Metric,
    method: Method = "zero",
    reference: Input | None = None,
    *,
    read_pos: ReadPos = None,
    per_position: bool = True,
    seed: int = 0,
    max_rows: int = 256,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Ablate each cell on its own (batched); columns: the site's fields, metric, effect = metric − base.

    `metric` receives the logits at `read_pos` only (default: each example's last real token), [batch, d_vocab].
    """
    prompt = prepare(model, input)
    sites = list(sites)
    validate_cells(model, sites, prompt.n_pos)
    edit = ablation_edit(method, reference, per_position, seed)
    cells = [[(s, edit) for s in cell_sites(c)] for c in sites]
    run = sweep(
        model,
        prompt,
        cells,
        metric,
        readout=Logits(read_pos),
        max_rows=max_rows,
        progress=progress,
        desc="ablation",
    )
    m_base = scalar(run.base)
    df = pd.DataFrame([cell_row(c) for c in sites])
    df["metric"] = [scalar(v) for v in run.values]
    df["effect"] = df["metric"] - m_base
    df.attrs.update(n_forward=run.n_forward, n_cells=len(sites), base_metric=m_base)
    return df
