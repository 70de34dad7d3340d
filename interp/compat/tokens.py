"""TransformerLens 3's token helpers: `to_str_tokens` on batches and lists, `get_token_position`, `loss_fn`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from interp import tokens as tok_utils


class TLTokensMixin:
    tokenizer: Any
    W_U: Tensor

    def to_str_tokens(
        self, input: str | Tensor | Sequence[Any], prepend_bos: bool | None = None, padding_side: Any = None
    ) -> Any:
        """One string per token: a text or [pos] / [1, pos] ids give a list; a list of texts or [batch, pos]
        ids give one list per row (TL 3 accepts the list; a batch tensor is an interp extension)."""
        tok = tok_utils.require(self.tokenizer)
        if isinstance(input, str):
            input = self.to_tokens(input, prepend_bos=prepend_bos)  # type: ignore[attr-defined]
        elif isinstance(input, Sequence) and input and not isinstance(input[0], int):
            return [self.to_str_tokens(x, prepend_bos, padding_side) for x in input]
        t = torch.as_tensor(input)
        if t.ndim == 2 and t.shape[0] > 1:
            return [[tok.decode([i]) for i in row.tolist()] for row in t]
        if t.ndim == 0:
            t = t[None]
        return [tok.decode([i]) for i in tok_utils.as_id_list(t)]

    def to_single_str_token(self, int_token: int) -> str:
        if not isinstance(int_token, int):
            raise TypeError(f"to_single_str_token takes one int token id, got {type(int_token).__name__}")
        return self.to_str_tokens(torch.tensor([int_token]))[0]

    def get_token_position(
        self,
        single_token: str | int | Tensor,
        input: str | Tensor,
        mode: Literal["first", "last"] = "first",
        prepend_bos: bool | None = None,
        padding_side: Any = None,
    ) -> int:
        """Index of the first (or last) occurrence of `single_token` in one prompt or [pos] / [1, pos] ids."""
        if mode not in ("first", "last"):
            raise ValueError(f"mode must be 'first' or 'last', got {mode!r}")
        tokens = self.to_tokens(input, prepend_bos=prepend_bos) if isinstance(input, str) else input  # type: ignore[attr-defined]
        if tokens.ndim == 2:
            if tokens.shape[0] != 1:
                raise ValueError(f"get_token_position takes one sequence, got a batch of {tokens.shape[0]}")
            tokens = tokens[0]
        if isinstance(single_token, str):
            single_token = self.to_single_token(single_token)  # type: ignore[attr-defined]
        elif isinstance(single_token, Tensor):
            single_token = int(single_token.item())
        hits = torch.as_tensor(tokens == single_token).nonzero().flatten()
        if not len(hits):
            raise ValueError(f"token {single_token} does not occur in the prompt")
        return int(hits[0 if mode == "first" else -1])

    def tokens_to_residual_directions(self, tokens: int | str | Sequence[str] | Tensor) -> Tensor:
        """The tokens' unembedding columns W_U[:, t], [..., d_model], as TransformerLens 3.

        ln_final's weight is not in them (TL's meaning: on a `fold_ln` model it is in W_U already). A
        one-element tensor is one token ([d_model]), as in TL. A list of single-token strings gives one
        direction per string (an interp extension; TL raises).
        """
        if isinstance(tokens, str):
            tokens = self.to_single_token(tokens)  # type: ignore[attr-defined]
        elif isinstance(tokens, Sequence) and tokens and isinstance(tokens[0], str):
            tokens = [self.to_single_token(t) for t in tokens]  # type: ignore[attr-defined]
        ids = torch.as_tensor(tokens, device=self.W_U.device)
        if ids.numel() == 1 and not isinstance(tokens, Sequence):  # TL: a one-element tensor is one token
            ids = ids.reshape(())
        return self.W_U[:, ids].movedim(0, -1)
