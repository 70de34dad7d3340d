"""Rotary embeddings: which dims rotate, in which pairing, at which frequencies (with long-context scaling).

`RotarySpec` is hashable, so `SequenceInfo.rope` computes each table once per forward and every layer with
the same spec shares it. Scaled frequencies follow Hugging Face's `modeling_rope_utils`, but statelessly:
`dynamic` and `longrope` read only the current sequence length (the largest position + 1), where HF's
dynamic RoPE remembers the longest sequence it has seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from interp.config import ModelConfig, RopeScaling


@dataclass(frozen=True)
class RotarySpec:
    dim: int  # rotated dims per head (the rest pass through)
    base: float  # theta
    adjacent_pairs: bool = False  # GPT-J's rotate-every-two; False = LLaMA/NeoX rotate-half
    scaling: RopeScaling | None = None

    @classmethod
    def for_layer(cls, cfg: ModelConfig, layer: int) -> RotarySpec:
        local = cfg.rotary_base_local is not None and cfg.window(layer) is not None
        base = cfg.rotary_base_local if local else cfg.rotary_base
        scaling = None if local else cfg.rope_scaling  # Gemma 3 scales only its global layers
        return cls(cfg.rotary_dims, float(base), cfg.rotary_adjacent_pairs, scaling)

    def inv_freq(self, seq_len: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, float]:
        """Inverse frequencies [dim / 2] and the factor cos and sin are multiplied by."""
        exponents = torch.arange(0, self.dim, 2, device=device).to(dtype) / self.dim
        s = self.scaling
        if s is None:
            return 1.0 / (self.base**exponents), 1.0
        return _SCALED[s.rope_type](self, s, exponents, seq_len)


def _linear(spec: RotarySpec, s: RopeScaling, exponents: Tensor, seq_len: int) -> tuple[Tensor, float]:
    return 1.0 / (spec.base**exponents) / s.factor, 1.0


def _dynamic(spec: RotarySpec, s: RopeScaling, exponents: Tensor, seq_len: int) -> tuple[Tensor, float]:
    original = s.original_max_position_embeddings
    assert original is not None  # checked by RopeScaling
    base = spec.base
    if seq_len > original:  # NTK-aware: grow the base with the sequence, only past the trained length
        base = base * ((s.factor * seq_len / original) - (s.factor - 1)) ** (spec.dim / (spec.dim - 2))
    return 1.0 / (base**exponents), 1.0


def _llama3(spec: RotarySpec, s: RopeScaling, exponents: Tensor, seq_len: int) -> tuple[Tensor, float]:
    inv_freq = 1.0 / (spec.base**exponents)
    original = s.original_max_position_embeddings
    assert original is not None
    low_wavelen, high_wavelen = original / s.low_freq_factor, original / s.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)
    smooth = (original / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
    smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled), 1.0


def _yarn(spec: RotarySpec, s: RopeScaling, exponents: Tensor, seq_len: int) -> tuple[Tensor, float]:
    dim, base, factor = spec.dim, spec.base, s.factor
    original = s.original_max_position_embeddings
    assert original is not None

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention = s.attention_factor
    if attention is None:
        attention = (
            mscale(factor, s.mscale) / mscale(factor, s.mscale_all_dim)
            if s.mscale and s.mscale_all_dim
            else mscale(factor)
        )

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(s.beta_fast), correction_dim(s.beta_slow)
    if s.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # as HF: no zero-width ramp
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    extrapolation = 1 - ramp.to(exponents.device, exponents.dtype)  # 1: keep the frequency
    pos_freqs = base**exponents
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, float(attention)


def _longrope(spec: RotarySpec, s: RopeScaling, exponents: Tensor, seq_len: int) -> tuple[Tensor, float]:
    original = s.original_max_position_embeddings
    assert original is not None
    attention = s.attention_factor
    if attention is None:
        attention = 1.0 if s.factor <= 1 else math.sqrt(1 + math.log(s.factor) / math.log(original))
    factors = s.long_factor if seq_len > original else s.short_factor
    ext = torch.tensor(factors, dtype=torch.float32, device=exponents.device).to(exponents.dtype)
    return 1.0 / (ext * spec.base**exponents), float(attention)


_SCALED = {"linear": _linear, "dynamic": _dynamic, "llama3": _llama3, "yarn": _yarn, "longrope": _longrope}


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x: Tensor) -> Tensor:
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)
