"""Per-forward facts about the sequence that every layer shares: positions, padding and attention masks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from interp.kv_cache import KVCache
    from interp.layers.rope import RotarySpec


@dataclass
class SequenceInfo:
    """Built once per forward by the model; attention layers ask it for their (cached) masks.

    Under a KV cache the forward holds only the new positions: `offset` of them are already cached, the
    queries are positions offset.., and the keys are every position so far (offset + n_pos of them).
    """

    positions: Tensor  # [batch, pos] position ids; with padding, counted over real tokens only
    key_valid: Tensor | None  # [batch, offset + pos] bool, False at padding; None when nothing is padded
    offset: int = 0  # positions already in the KV cache, before this forward's first row
    kv_cache: KVCache | None = None  # the per-call cache attention layers read and extend (or None)
    _masks: dict[int | None, Tensor] = field(default_factory=dict, repr=False)
    _rope: dict[tuple[RotarySpec, torch.dtype], tuple[Tensor, Tensor]] = field(
        default_factory=dict, repr=False
    )
    _copies: dict[torch.device, SequenceInfo] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls,
        batch: int,
        n_pos: int,
        attention_mask: Tensor | None,
        device: torch.device,
        kv_cache: KVCache | None = None,
    ) -> SequenceInfo:
        offset = 0
        if kv_cache is not None:  # the mask then covers the cached positions too
            offset, attention_mask = kv_cache.start(batch, n_pos, attention_mask, device)
        if attention_mask is None or bool(attention_mask.all()):
            positions = torch.arange(offset, offset + n_pos, device=device).expand(batch, n_pos)
            return cls(positions, None, offset, kv_cache)
        valid = attention_mask.to(device=device, dtype=torch.bool)
        # Left padding shifts positions: the first real token is position 0, as in HF generate.
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)[:, offset:]
        return cls(positions, valid, offset, kv_cache)

    def to(self, device: torch.device, non_blocking: bool = False) -> SequenceInfo:
        """This sequence on `device` (itself if it is there): a placed model's blocks each run on their own
        device, and a plain dataclass is not moved by accelerate. One copy per device, sharing the KV cache,
        so each device computes its masks and RoPE tables once per forward."""
        device = torch.device(device)
        if self.positions.device == device:
            return self
        if device not in self._copies:
            self._copies.setdefault(self.positions.device, self)
            valid = None if self.key_valid is None else self.key_valid.to(device, non_blocking=non_blocking)
            positions = self.positions.to(device, non_blocking=non_blocking)
            # every copy shares one table of copies, so hopping back to a device finds the first one
            copy = SequenceInfo(positions, valid, self.offset, self.kv_cache, _copies=self._copies)
            self._copies[device] = copy
        return self._copies[device]

    @property
    def n_pos(self) -> int:
        return self.positions.shape[-1]

    @property
    def n_keys(self) -> int:
        return self.offset + self.n_pos

    def is_plain_causal(self, window: int | None) -> bool:
        """True when the fused kernel's built-in causal mask is the whole story.

        Never under a KV cache: with fewer queries than keys, SDPA's `is_causal` mask is aligned top-left
        (query i sees keys 0..i), which is wrong for decoding, where query i is position offset + i.
        """
        return self.offset == 0 and self.key_valid is None and (window is None or window >= self.n_pos)

    def sdpa_mask(self, window: int | None) -> tuple[Tensor | None, bool]:
        """(attn_mask, is_causal) for `scaled_dot_product_attention`."""
        if self.is_plain_causal(window):
            return None, True
        if self.n_pos == 1 and self.key_valid is None and (window is None or window >= self.n_keys):
            return None, False  # one new query that sees every key: no mask at all
        return self.mask(window), False

    def mask(self, window: int | None) -> Tensor:
        """Bool [batch or 1, 1, query_pos, key_pos]; True where a query may attend to a key."""
        if window not in self._masks:
            device = self.positions.device
            q = torch.arange(self.offset, self.n_keys, device=device)  # absolute query positions
            k = torch.arange(self.n_keys, device=device)
            offset = q[:, None] - k[None, :]  # query index minus key index
            allowed = offset >= 0
            if window is not None:
                allowed = allowed & (offset < window)
            allowed = allowed[None, None]
            if self.key_valid is not None:
                # A padded query would see no key at all (NaN softmax); let it see itself instead.
                allowed = allowed & (self.key_valid[:, None, None, :] | (offset == 0))
            self._masks[window] = allowed
        return self._masks[window]

    def rope(self, spec: RotarySpec, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos and sin [batch, pos, spec.dim] for rotary embeddings, computed as Hugging Face does.

        Computed once per forward in at least float32 and shared by every layer with the same spec.
        Length-dependent scalings (dynamic, longrope) read this forward's length, the largest position + 1.
        """
        compute = torch.promote_types(dtype, torch.float32)
        key = (spec, compute)
        if key not in self._rope:
            device = self.positions.device
            length = 0 if spec.scaling is None else int(self.positions.max()) + 1
            inv_freq, attention_factor = spec.inv_freq(length, device, compute)
            freqs = self.positions[..., None].to(compute) * inv_freq
            if spec.adjacent_pairs:
                emb = freqs.repeat_interleave(2, dim=-1)
            else:
                emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos(), emb.sin()
            if attention_factor != 1.0:
                cos, sin = cos * attention_factor, sin * attention_factor
            self._rope[key] = (cos, sin)
        cos, sin = self._rope[key]
        return cos.to(dtype), sin.to(dtype)


# The SequenceInfo of the forward running in this thread (or task), so that a hook can learn which absolute
# positions its activation holds: under a KV cache, only the new ones. Context-local, like scoped hooks.
_CURRENT: ContextVar[SequenceInfo | None] = ContextVar("interp_current_sequence", default=None)


@contextmanager
def running(seq: SequenceInfo) -> Iterator[SequenceInfo]:
    """Make `seq` the current sequence for the duration of a forward (nested forwards restore it)."""
    token = _CURRENT.set(seq)
    try:
        yield seq
    finally:
        _CURRENT.reset(token)


def cached_positions() -> int:
    """Positions already in the KV cache of the forward now running (0 outside a forward, or uncached).

    A hook's activation [batch, pos, ...] then holds absolute positions cached_positions() + 0, 1, ...
    """
    seq = _CURRENT.get()
    return 0 if seq is None else seq.offset


def with_cached_positions(act: Tensor, dim: int = 1) -> tuple[Tensor, int]:
    """A fresh copy of `act` whose `dim` axis spans every position so far, and where the new rows start.

    Edits that index absolute positions (an ablation at position 3, a steering vector at [0, 9]) write into
    the copy; `copy.narrow(dim, start, act.shape[dim])` is the edited activation. Rows before `start` stand
    for positions already in the KV cache: they are zeros, and whatever an edit writes there is dropped.
    """
    past = cached_positions()
    if past == 0:
        return act.clone(), 0
    shape = list(act.shape)
    shape[dim] += past
    full = act.new_zeros(shape)
    full.narrow(dim, past, act.shape[dim]).copy_(act)
    return full, past
