"""Deprecated: the batched-intervention runner is `interp.analysis.engine` now; these names stay importable."""

from interp.analysis.engine import (
    Input,
    Metric,
    Prompt,
    ReadPos,
    TokenLike,
    check_aligned,
    layer_window,
    prepare,
    read_index,
    scalar,
    token_ids,
    unembed_at,
)

__all__ = [
    "Input",
    "Metric",
    "Prompt",
    "ReadPos",
    "TokenLike",
    "check_aligned",
    "layer_window",
    "prepare",
    "read_index",
    "scalar",
    "token_ids",
    "unembed_at",
]
