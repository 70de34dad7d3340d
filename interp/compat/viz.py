"""circuitsvis views of an interp cache (the optional `interp[viz]` extra); the HTML loads its JS from a CDN.

from interp.compat.viz import attention_heads
attention_heads(model, cache, layer=0)  # in a notebook cell: renders every head's pattern
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


def attention_heads(model: Any, cache: Any, layer: int, batch: int = 0, tokens: Tensor | None = None) -> Any:
    """`circuitsvis.attention.attention_heads` for one layer of one prompt, labelled with its tokens."""
    try:
        import circuitsvis as cv
    except ImportError as e:
        raise ImportError("attention views need circuitsvis: pip install 'interp[viz]'") from e
    pattern = cache["pattern", layer]
    if cache.has_batch_dim:
        pattern = pattern[batch]
    ids = tokens if tokens is not None else _tokens_of(cache, batch)
    labels = model.to_str_tokens(ids)
    if len(labels) != pattern.shape[-1]:
        raise ValueError(f"{len(labels)} tokens for a pattern over {pattern.shape[-1]} positions")
    return cv.attention.attention_heads(attention=pattern.float().cpu(), tokens=labels)


def _tokens_of(cache: Any, batch: int) -> Tensor:
    tokens = getattr(cache, "tokens", None)
    if tokens is None:
        raise ValueError("pass tokens=...: this cache does not know the tokens it was run on")
    return tokens[batch] if tokens.ndim == 2 else tokens
