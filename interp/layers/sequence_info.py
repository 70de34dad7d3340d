"""Per-forward facts about the sequence that every layer shares: positions, padding and attention masks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from interp.layers.rope import RotarySpec


@dataclass
class SequenceInfo:
    """Built once per forward by the model; attention layers ask it for their (cached) masks."""

    positions: Tensor  # [batch, pos] position ids; with padding, counted over real tokens only
    key_valid: Tensor | None  # [batch, pos] bool, False at padding; None when nothing is padded
    _masks: dict[int | None, Tensor] = field(default_factory=dict, repr=False)
    _rope: dict[tuple[RotarySpec, torch.dtype], tuple[Tensor, Tensor]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def build(
        cls, batch: int, n_pos: int, attention_mask: Tensor | None, device: torch.device
    ) -> SequenceInfo:
        if attention_mask is None or bool(attention_mask.all()):
            positions = torch.arange(n_pos, device=device).expand(batch, n_pos)
            return cls(positions, None)
        valid = attention_mask.to(device=device, dtype=torch.bool)
        # Left padding shifts positions: the first real token is position 0, as in HF generate.
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        return cls(positions, valid)

    @property
    def n_pos(self) -> int:
        return self.positions.shape[-1]

    def is_plain_causal(self, window: int | None) -> bool:
        """True when the fused kernel's built-in causal mask is the whole story."""
        return self.key_valid is None and (window is None or window >= self.n_pos)

    def mask(self, window: int | None) -> Tensor:
        """Bool [batch or 1, 1, query_pos, key_pos]; True where a query may attend to a key."""
        if window not in self._masks:
            q = torch.arange(self.n_pos, device=self.positions.device)
            offset = q[:, None] - q[None, :]  # query index minus key index
            allowed = offset >= 0
            if window is not None:
                allowed = allowed & (offset < window)
            allowed = allowed[None, None]
            if self.key_valid is not None:
                # A padded query would see no key at all (NaN softmax); let it see itself instead.
                allowed = allowed & (
                    self.key_valid[:, None, None, :]
                    | torch.eye(self.n_pos, dtype=torch.bool, device=q.device)
                )
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
