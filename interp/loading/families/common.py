"""Config readings that several families share."""

from __future__ import annotations

from typing import Any

from interp.loading.checkpoint import Checkpoint


def tied(hf: Any, ck: Checkpoint, embed_key: str) -> bool:
    tied = bool(getattr(hf, "tie_word_embeddings", True))
    if tied and ck.has("lm_head.weight"):
        ck.used.add("lm_head.weight")  # in-memory tied models list the shared matrix twice
    return tied


def windows(hf: Any, n_layers: int) -> tuple[int | None, ...]:
    window = getattr(hf, "sliding_window", None)
    if not window or (hasattr(hf, "use_sliding_window") and not hf.use_sliding_window):
        return ()
    types = getattr(hf, "layer_types", None) or ["sliding_attention"] * n_layers
    return tuple(window if t == "sliding_attention" else None for t in types)
