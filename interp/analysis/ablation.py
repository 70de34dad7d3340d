"""Zero, mean and resample ablation of heads, attention layers, MLPs, neurons and residual positions.

    with ablate(model, [Head(9, 6), Neuron(3, 117)], method="mean", reference=other_prompts):
        logits = model(tokens)                                     # any forward inside is ablated
    out = run_ablated(model, tokens, [MLP(0)], metric=prob(answer))  # one call: logits and metric
    df = ablation_sweep(model, tokens, Head.every(model), metric)    # each head on its own, batched

Methods (chosen once, here):
- "zero": the slice becomes 0. For a head this removes z, hence the head's whole output except b_O.
- "mean": the mean over a reference batch, per position by default (`per_position=False` also averages
  over positions, which is what a constant replacement such as a bias would do).
- "resample": each example gets the activation of a random reference example (seeded).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.metrics import bind
from interp.analysis.runner import (
    CellRun,
    Edit,
    Input,
    Metric,
    ReadPos,
    cached_run,
    edits_by_hook,
    prepare,
    read_index,
    run_cells,
    scalar,
    unembed_at,
)
from interp.analysis.specs import Cell, Spec, cell_row, cell_sites, validate_cells
from interp.hooks import HookPoint
from interp.layers.sequence_info import with_cached_positions
from interp.transformer import HookedTransformer

Method = Literal["zero", "mean", "resample"]


def ablation_edits(
    model: HookedTransformer,
    sites: Sequence[Spec],
    method: Method = "zero",
    reference: Input | None = None,
    per_position: bool = True,
    seed: int = 0,
) -> list[tuple[str, Edit]]:
    """(hook name, in-place edit) for each site; reference activations are computed here, once."""
    if method not in ("zero", "mean", "resample"):
        raise ValueError(f"ablation method must be 'zero', 'mean' or 'resample', got {method!r}")
    if method == "zero":
        return [(s.hook_name, _zero(s)) for s in sites]
    if reference is None:
        raise ValueError(f"{method} ablation needs a reference batch (reference=...)")
    ref = prepare(model, reference)
    names = list(dict.fromkeys(s.hook_name for s in sites))
    _, cache = model.run_with_cache(ref.tokens, names_filter=names, attention_mask=ref.mask)
    if method == "mean":
        edits = []
        for s in sites:
            acts, dim = cache[s.hook_name], _pos_dim(s)
            mean = _mean(acts, ref.mask, dim, per_position)
            edits.append((s.hook_name, _replace(s, mean, _mean(acts, ref.mask, dim, False), dim)))
        return edits
    if ref.mask is not None and not bool(ref.mask.all()):
        raise ValueError(
            "resample ablation needs reference prompts of one token length (padding would be copied)"
        )
    gen = torch.Generator().manual_seed(seed)
    return [(s.hook_name, _resample(s, cache[s.hook_name], gen)) for s in sites]


def _zero(site: Spec) -> Edit:
    def edit(rows: Tensor) -> None:
        rows[site.selector] = 0.0

    return edit


def _pos_dim(site: Spec) -> int:
    """The activation axis holding token positions: queries for a pattern, else axis 1."""
    return 2 if getattr(site, "part", "") == "pattern" else 1


def _mean(acts: Tensor, mask: Tensor | None, pos_dim: int, per_position: bool) -> Tensor:
    """Mean over the reference batch (and positions), counting real tokens only, never padding."""
    shape = [1] * acts.ndim
    shape[0], shape[pos_dim] = acts.shape[0], acts.shape[pos_dim]
    weight = torch.ones(shape, dtype=acts.dtype, device=acts.device)
    if mask is not None:
        weight = mask.to(acts).view(shape)
    # A pattern averaged over query positions is not a pattern: patterns are always per position.
    dims = (0,) if per_position or pos_dim == 2 else (0, pos_dim)
    return (acts * weight).sum(dims, keepdim=True) / weight.sum(dims, keepdim=True).clamp(min=1)


def _replace(site: Spec, value: Tensor, overall: Tensor, pos_dim: int) -> Edit:
    """Write the reference mean. A run shorter than the reference takes its first positions; a longer one
    (generation under ablation) takes the mean over all the reference's real positions beyond them."""

    def edit(rows: Tensor) -> None:
        n, have = rows.shape[pos_dim], value.shape[pos_dim]
        fill = value
        if have not in (1, n):
            if pos_dim == 2:  # a pattern [batch, head, query, key]: both position axes follow the run
                if n > have:
                    raise ValueError(
                        f"{site}: the reference has {have} positions but this run has {n}; "
                        "mean-ablating a pattern needs a reference at least as long as the run"
                    )
                fill = value[:, :, :n, :n]
            elif n < have:
                fill = value[:, :n]
            else:
                fill = torch.cat([value, overall.expand(-1, n - have, *value.shape[2:])], dim=1)
        rows[site.selector] = fill.expand_as(rows)[site.selector]

    return edit


def _resample(site: Spec, acts: Tensor, gen: torch.Generator) -> Edit:
    def edit(rows: Tensor) -> None:
        if acts.shape[1:] != rows.shape[1:]:
            raise ValueError(
                f"{site}: resampled reference activations have shape {tuple(acts.shape[1:])}, "
                f"this run {tuple(rows.shape[1:])}; the reference prompts need the same length"
            )
        pick = torch.randint(acts.shape[0], (rows.shape[0],), generator=gen).to(acts.device)
        rows[site.selector] = acts[pick][site.selector]

    return edit


@contextmanager
def ablate(
    model: HookedTransformer,
    sites: Spec | Sequence[Spec],
    method: Method = "zero",
    reference: Input | None = None,
    *,
    per_position: bool = True,
    seed: int = 0,
) -> Iterator[HookedTransformer]:
    """Every forward inside the block runs with the sites ablated; the hooks go when the block ends."""
    sites = list(cell_sites(sites))
    validate_cells(model, sites)
    by_hook = edits_by_hook(ablation_edits(model, sites, method, reference, per_position, seed))

    def apply(act: Tensor, hook: HookPoint) -> Tensor:
        dim = 2 if hook.name.endswith("hook_pattern") else 1
        new = act.shape[dim]
        full, start = with_cached_positions(act, dim)  # absolute positions, also under a KV cache
        n_pos = full.shape[-1] if dim == 2 else full.shape[1]
        for site in sites:  # positions can only be checked once the run's length is known
            if site.hook_name == hook.name:
                site.validate(model, n_pos)
        for edit in by_hook[hook.name]:
            edit(full)
        return full.narrow(dim, start, new)

    with model.hooks([(name, apply) for name in by_hook]):
        yield model


@dataclass(frozen=True)
class AblationRun:
    logits: Tensor  # [batch, pos, d_vocab]
    metric: float | None  # the metric at the read positions, when one was given


def run_ablated(
    model: HookedTransformer,
    input: Input,
    sites: Spec | Sequence[Spec],
    metric: Metric | None = None,
    method: Method = "zero",
    reference: Input | None = None,
    *,
    read_pos: ReadPos = None,
    per_position: bool = True,
    seed: int = 0,
) -> AblationRun:
    """One ablated forward: its logits, and the metric on the logits at `read_pos` if a metric is given."""
    metric = None if metric is None else bind(metric, model)  # string metrics: this model's tokenizer
    prompt = prepare(model, input)
    with ablate(model, sites, method, reference, per_position=per_position, seed=seed), torch.no_grad():
        resid = model(prompt.tokens, attention_mask=prompt.mask, stop_at_layer=model.cfg.n_layers)
        logits = model.unembed(model.ln_final(resid))
    value = None
    if metric is not None:
        read = unembed_at(model, resid, read_index(prompt, read_pos))
        value = scalar(metric(read))
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
    """Ablate each cell on its own (batched); columns: the site's fields, metric, effect = metric − base."""
    metric = bind(metric, model)  # a string metric gets its token ids from this model's tokenizer
    prompt = prepare(model, input)
    sites = list(sites)
    validate_cells(model, sites, prompt.n_pos)
    groups = [cell_sites(c) for c in sites]
    flat = [s for g in groups for s in g]
    edits = iter(ablation_edits(model, flat, method, reference, per_position, seed))
    cells = [CellRun(min(s.layer for s in g), edits_by_hook([next(edits) for _ in g])) for g in groups]
    index = read_index(prompt, read_pos)
    base = cached_run(model, prompt, [f"blocks.{c.start_layer}.hook_resid_pre" for c in cells], index)
    values, n_forward = run_cells(
        model,
        prompt,
        lambda layer: base.cache[f"blocks.{layer}.hook_resid_pre"],
        cells,
        metric,
        index,
        max_rows=max_rows,
        progress=progress,
        desc="ablation",
    )
    m_base = scalar(metric(base.logits))
    df = pd.DataFrame([cell_row(c) for c in sites])
    df["metric"] = [scalar(v) for v in values]
    df["effect"] = df["metric"] - m_base
    df.attrs.update(n_forward=n_forward + 1 + (method != "zero"), n_cells=len(sites), base_metric=m_base)
    return df
