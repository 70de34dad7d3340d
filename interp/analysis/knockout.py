"""Attention knockout (Geva et al. 2023): which attention edges carry the information the answer needs?

Blocking the edges from a set of source positions into the read position, in every head of a window of
layers, is `knock_out()` at one `Edge(layer, dest, sources)` per layer of the window: the attention scores
become −inf before the softmax (the destination then spreads its attention over the remaining sources).
The effect is the relative change in the answer's probability, (p_new − p_base) / p_base. A sweep slides
the window over the layers, one engine cell per window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from interp.analysis.edits import knock_out
from interp.analysis.engine import Input, Prompt, TokenLike, layer_window, prepare, prob_change
from interp.analysis.specs import Edge
from interp.transformer import HookedTransformer


@dataclass(frozen=True)
class Knockout:
    p_base: float  # answer probability without knockout (mean over the batch)
    p_new: float  # with the edges blocked
    relative_change: float  # mean over the batch of (p_new − p_base) / p_base


def _prepare(model: HookedTransformer, prompt: Input, read_pos: int) -> tuple[Prompt, int]:
    base = prepare(model, prompt)
    if base.mask is not None:
        raise ValueError("knockout needs prompts of equal length (no padding): positions must line up")
    if not -base.n_pos <= read_pos < base.n_pos:
        raise ValueError(f"read_pos {read_pos} out of range for a {base.n_pos}-token input")
    return base, read_pos % base.n_pos


def _check(sources: Sequence[int], dest: int, n_pos: int, name: str) -> tuple[int, ...]:
    src = sorted({s % n_pos if -n_pos <= s < n_pos else s for s in sources})
    if not src:
        raise ValueError(f"source set {name!r} is empty")
    bad = [s for s in src if not 0 <= s <= dest]
    if bad:
        raise ValueError(
            f"source set {name!r} has positions {bad} outside 0..{dest}: the read position {dest} "
            "cannot attend to them (causal attention), so there is no edge to block"
        )
    if len(src) == dest + 1:
        raise ValueError(
            f"source set {name!r} blocks every key of position {dest}; its softmax would be empty"
        )
    return tuple(src)


def knockout_sweep(
    model: HookedTransformer,
    prompt: Input,
    sources: Mapping[str, Sequence[int]] | Sequence[int],
    *,
    window: int = 9,
    read_pos: int = -1,
    answer: TokenLike | None = None,
    layers: Sequence[int] | None = None,
    max_rows: int = 256,
    progress: bool | None = None,
    target_pos: int | None = None,
) -> pd.DataFrame:
    """Knock out sources -> read_pos in the window of layers around each layer; one row per (sources, layer).

    `sources` is a position list or named sets, e.g. {"subject": [2, 3], "last": [9]}. `answer` defaults
    to the base run's top prediction at `read_pos`. Columns: sources, layer, first_layer, last_layer,
    p_base, p_new, relative_change. attrs: n_forward, target_pos (the read position), answer.
    Deprecated: `target_pos=` for `read_pos=`.
    """
    base, dest = _prepare(model, prompt, read_pos if target_pos is None else target_pos)
    n = model.cfg.n_layers
    named = dict(sources) if isinstance(sources, Mapping) else {"sources": list(sources)}
    named = {k: _check(v, dest, base.n_pos, k) for k, v in named.items()}
    centres = list(range(n)) if layers is None else list(layers)
    if any(not 0 <= c < n for c in centres) or window < 1:
        raise ValueError(f"layers must lie in 0..{n - 1} and window must be >= 1")
    cells, rows = [], []
    for name, src in named.items():
        for centre in centres:
            span = layer_window(centre, window, n)
            cells.append([(Edge(layer, dest, src), knock_out()) for layer in span])
            rows.append({"sources": name, "layer": centre, "first_layer": span[0], "last_layer": span[-1]})
    run, ids, p_base = prob_change(
        model, base, cells, answer, dest, desc="knockout", max_rows=max_rows, progress=progress
    )
    df = pd.DataFrame(rows)
    df["p_base"] = float(p_base.mean())
    df["p_new"] = [float(v[0]) for v in run.values]
    df["relative_change"] = [float(v[1]) for v in run.values]
    df.attrs.update(n_forward=run.n_forward, target_pos=dest, answer=ids.tolist())
    return df


def knockout(
    model: HookedTransformer,
    prompt: Input,
    sources: Sequence[int],
    layers: Sequence[int],
    *,
    read_pos: int = -1,
    answer: TokenLike | None = None,
    target_pos: int | None = None,
) -> Knockout:
    """Block sources -> read_pos in exactly `layers` (all heads) and report the answer's probability change."""
    layers = sorted(set(layers))
    if not layers:
        raise ValueError("no layers given")
    n = model.cfg.n_layers
    if layers[0] < 0 or layers[-1] >= n:
        raise ValueError(f"layers must lie in 0..{n - 1}, got {layers}")
    base, dest = _prepare(model, prompt, read_pos if target_pos is None else target_pos)
    src = _check(sources, dest, base.n_pos, "sources")
    cell = [(Edge(layer, dest, src), knock_out()) for layer in layers]
    run, _, p_base = prob_change(model, base, [cell], answer, dest, progress=False)
    p_new, change = run.values[0].tolist()
    return Knockout(float(p_base.mean()), p_new, change)
