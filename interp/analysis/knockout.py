"""Attention knockout (Geva et al. 2023): which attention edges carry the information the answer needs?

Blocking the edges from a set of source positions into a target position, in every head of a window of
layers, is done by setting those attention scores to −inf before the softmax (the target then spreads
its attention over the remaining sources). The effect is the relative change in the answer's
probability, (p_new − p_base) / p_base. A sweep slides the window over the layers, batched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.metrics import upcast
from interp.analysis.runner import (
    CellRun,
    Edit,
    Input,
    Prompt,
    TokenLike,
    cached_run,
    edits_by_hook,
    layer_window,
    prepare,
    prob_change,
    token_ids,
)
from interp.transformer import HookedTransformer


@dataclass(frozen=True)
class Knockout:
    p_base: float  # answer probability without knockout (mean over the batch)
    p_new: float  # with the edges blocked
    relative_change: float  # mean over the batch of (p_new − p_base) / p_base


def block_edges(target: int, sources: Sequence[int]) -> Edit:
    """An edit of attention scores [B, head, query, key] that removes the edges sources -> target."""
    keys = list(sources)

    def edit(scores: Tensor) -> None:
        scores[:, :, target, keys] = float("-inf")

    return edit


def _prepare(model: HookedTransformer, prompt: Input, target_pos: int) -> tuple[Prompt, int]:
    base = prepare(model, prompt)
    if base.mask is not None:
        raise ValueError("knockout needs prompts of equal length (no padding): positions must line up")
    if not -base.n_pos <= target_pos < base.n_pos:
        raise ValueError(f"target_pos {target_pos} out of range for a {base.n_pos}-token input")
    return base, target_pos % base.n_pos


def _check(sources: Sequence[int], target: int, n_pos: int, name: str) -> list[int]:
    src = sorted({s % n_pos if -n_pos <= s < n_pos else s for s in sources})
    if not src:
        raise ValueError(f"source set {name!r} is empty")
    bad = [s for s in src if not 0 <= s <= target]
    if bad:
        raise ValueError(
            f"source set {name!r} has positions {bad} outside 0..{target}: the target at {target} "
            "cannot attend to them (causal attention), so there is no edge to block"
        )
    if len(src) == target + 1:
        raise ValueError(
            f"source set {name!r} blocks every key of position {target}; its softmax would be empty"
        )
    return src


def knockout_sweep(
    model: HookedTransformer,
    prompt: Input,
    sources: Mapping[str, Sequence[int]] | Sequence[int],
    *,
    window: int = 9,
    target_pos: int = -1,
    answer: TokenLike | None = None,
    layers: Sequence[int] | None = None,
    max_rows: int = 256,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Knock out sources -> target in the window of layers around each layer; one row per (sources, layer).

    `sources` is a position list or named sets, e.g. {"subject": [2, 3], "last": [9]}. `answer` defaults
    to the base run's top prediction at `target_pos`. Columns: sources, layer, first_layer, last_layer,
    p_base, p_new, relative_change. attrs: n_forward.
    """
    base, target = _prepare(model, prompt, target_pos)
    n, n_pos = model.cfg.n_layers, base.n_pos
    named = dict(sources) if isinstance(sources, Mapping) else {"sources": list(sources)}
    named = {k: _check(v, target, n_pos, k) for k, v in named.items()}
    centres = list(range(n)) if layers is None else list(layers)
    if any(not 0 <= c < n for c in centres) or window < 1:
        raise ValueError(f"layers must lie in 0..{n - 1} and window must be >= 1")

    cells, rows = [], []
    for name, src in named.items():
        for centre in centres:
            span = layer_window(centre, window, n)
            edits = [(f"blocks.{layer}.attn.hook_attn_scores", block_edges(target, src)) for layer in span]
            cells.append(CellRun(span[0], edits_by_hook(edits)))
            rows.append({"sources": name, "layer": centre, "first_layer": span[0], "last_layer": span[-1]})
    index = torch.full((base.batch,), target, device=base.tokens.device)
    df, ids = prob_change(
        model, base, cells, rows, index, answer, desc="knockout", max_rows=max_rows, progress=progress
    )
    df.attrs.update(target_pos=target, answer=ids.tolist())
    return df


def knockout(
    model: HookedTransformer,
    prompt: Input,
    sources: Sequence[int],
    layers: Sequence[int],
    *,
    target_pos: int = -1,
    answer: TokenLike | None = None,
) -> Knockout:
    """Block sources -> target in exactly `layers` (all heads) and report the answer's probability change."""
    layers = sorted(set(layers))
    if not layers:
        raise ValueError("no layers given")
    n = model.cfg.n_layers
    if layers[0] < 0 or layers[-1] >= n:
        raise ValueError(f"layers must lie in 0..{n - 1}, got {layers}")
    base, target = _prepare(model, prompt, target_pos)
    src = _check(sources, target, base.n_pos, "sources")
    edit = block_edges(target, src)

    def hook(scores: Tensor, hook: object) -> Tensor:
        scores = scores.clone()
        edit(scores)
        return scores

    index = torch.full((base.batch,), target, device=base.tokens.device)
    run = cached_run(model, base, [], index)
    blocked = cached_run(
        model, base, [], index, hooks=[(f"blocks.{layer}.attn.hook_attn_scores", hook) for layer in layers]
    )
    ids = run.logits.argmax(-1) if answer is None else token_ids(model, answer, base.batch)
    rows_idx = torch.arange(base.batch, device=ids.device)
    p_base = upcast(run.logits).softmax(-1)[rows_idx, ids]
    p_new = upcast(blocked.logits).softmax(-1)[rows_idx, ids]
    return Knockout(float(p_base.mean()), float(p_new.mean()), float((p_new / p_base - 1).mean()))
