"""Position slices and TL's layer convention, shared by interp's cache and its TL mixin."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

PosSlice = int | slice | Sequence[int] | Tensor | None


def _final_or(layer: int | None, n_layers: int) -> int:
    """TransformerLens's convention for the decompositions: None and -1 both mean "up to the unembed"."""
    if layer is None or layer == -1:
        return n_layers
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer={layer} out of range: use 0..{n_layers}, or -1/None for the final residual")
    return layer


def _slice_pos(x: Tensor, pos_slice: PosSlice, pos_dim: int = -2) -> Tensor:
    if pos_slice is None:
        return x
    if isinstance(pos_slice, int):
        return x.select(pos_dim, pos_slice)
    if isinstance(pos_slice, slice):
        return x.narrow(pos_dim, *_slice_bounds(pos_slice, x.shape[pos_dim]))
    return x.index_select(pos_dim, torch.as_tensor(pos_slice, device=x.device))


def _slice_bounds(s: slice, n: int) -> tuple[int, int]:
    start, stop, step = s.indices(n)
    if step != 1:
        raise ValueError("pos_slice slices must have step 1")
    return start, max(stop - start, 0)
