"""`KVCache`: the keys and values of the positions seen so far, one per generation call.

A cache is a plain object the caller owns and passes to a forward (`model(tokens, past_kv_cache=cache)`);
the model holds no cache state, so two threads generating on one model never share one. Each forward
appends its new positions: attention layers store their keys after rotation (RoPE) and their values, as
[batch, kv_head, pos, d_head], and the cache keeps the padding mask of every cached position.

    cache = KVCache(model.cfg.n_layers)
    logits = model(prompt_tokens, past_kv_cache=cache)          # prefill: every prompt position
    logits = model(next_tokens[:, None], past_kv_cache=cache)   # one new position, attending to all

`freeze()` keeps the cache as it is: forwards still read it (a shared prompt prefix, say) but no longer
extend it. A forward that raises half-way leaves the cache out of step; the next forward says so.
"""

from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    def __init__(self, n_layers: int) -> None:
        if n_layers <= 0:
            raise ValueError(f"a KV cache needs n_layers >= 1, got {n_layers}")
        self.n_layers = n_layers
        self.keys: list[Tensor | None] = [None] * n_layers  # [batch, kv_head, pos, d_head] per layer
        self.values: list[Tensor | None] = [None] * n_layers
        self.valid: Tensor | None = None  # [batch, pos] bool, False at padding; None: nothing padded
        self.length = 0  # positions cached
        self.batch: int | None = None
        self.frozen = False
        self._offset = 0  # where the running forward's first position goes

    def freeze(self) -> None:
        """Read-only from now on: forwards attend to the cached positions without adding theirs."""
        self.frozen = True

    def unfreeze(self) -> None:
        self.frozen = False

    def start(
        self, batch: int, n_new: int, attention_mask: Tensor | None, device: torch.device
    ) -> tuple[int, Tensor | None]:
        """Begin a forward of `n_new` positions: (positions already cached, the mask over all of them).

        `attention_mask` covers the new positions only ([batch, n_new], 1 = real token).
        """
        if self.batch is not None and batch != self.batch:
            raise ValueError(f"this KV cache holds a batch of {self.batch}; the forward has {batch} rows")
        if attention_mask is not None and tuple(attention_mask.shape) != (batch, n_new):
            raise ValueError(
                f"with a KV cache, attention_mask covers the new positions only: expected shape "
                f"{(batch, n_new)}, got {tuple(attention_mask.shape)}"
            )
        new = None if attention_mask is None else attention_mask.to(device=device, dtype=torch.bool)
        if self.valid is None and (new is None or bool(new.all())):
            full = None
        else:
            past = self.valid
            if past is None:
                past = torch.ones(batch, self.length, dtype=torch.bool, device=device)
            if new is None:
                new = torch.ones(batch, n_new, dtype=torch.bool, device=device)
            full = torch.cat([past.to(device), new], dim=1)
        offset = self.length
        self._offset = offset
        if not self.frozen:
            self.batch, self.valid, self.length = batch, full, offset + n_new
        return offset, full

    def extend(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append a layer's new keys and values [batch, kv_head, new, d_head]; return all of them."""
        past_k, past_v = self.keys[layer], self.values[layer]
        have = 0 if past_k is None else past_k.shape[2]
        if have != self._offset:
            raise ValueError(
                f"KV cache out of step at layer {layer}: it holds {have} positions but the forward expects "
                f"{self._offset} (an earlier forward raised, or skipped this layer); use a fresh cache"
            )
        if past_k is not None and past_v is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        if not self.frozen:
            self.keys[layer], self.values[layer] = k, v
        return k, v

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)

    def __repr__(self) -> str:
        state = ", frozen" if self.frozen else ""
        return (
            f"KVCache({self.n_layers} layers, {self.length} positions, {self.nbytes / 2**20:.1f} MiB{state})"
        )
