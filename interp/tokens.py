"""Text <-> token ids with an explicit BOS policy and padding for prompts of different lengths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

PaddingSide = Literal["right", "left"]


def require(tokenizer: Any) -> Any:
    if tokenizer is None:
        raise ValueError("this model has no tokenizer; pass token ids (a LongTensor) instead of text")
    return tokenizer


def encode(
    tokenizer: Any, text: str | Sequence[str], prepend_bos: bool, padding_side: PaddingSide = "right"
) -> tuple[Tensor, Tensor]:
    """Token ids [batch, pos] and attention mask [batch, pos] (1 = real token, 0 = padding)."""
    texts = [text] if isinstance(text, str) else list(text)
    if not texts:
        raise ValueError("empty input: got an empty list of prompts")
    tok = require(tokenizer)
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")
    bos: list[int] = []
    if prepend_bos:
        if tok.bos_token_id is None:
            raise ValueError("prepend_bos=True but the tokenizer has no BOS token; use prepend_bos=False")
        bos = [tok.bos_token_id]
    rows = [bos + tok.encode(t, add_special_tokens=False) for t in texts]
    if any(not r for r in rows):
        raise ValueError("empty input: a prompt has no tokens (an empty string with prepend_bos=False)")
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        span = slice(0, len(r)) if padding_side == "right" else slice(width - len(r), width)
        tokens[i, span] = torch.tensor(r)
        mask[i, span] = 1
    return tokens, mask


def as_id_list(tokens: Tensor | Sequence[int]) -> list[int]:
    t = torch.as_tensor(tokens)
    if t.ndim == 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 1:
        raise ValueError(f"expected one sequence of token ids, got shape {tuple(t.shape)}")
    return t.tolist()
