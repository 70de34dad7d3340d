"""Multi-head attention with per-head weights, grouped-query heads, windows and optional RoPE.

Weights are stored per head, W_Q[head, d_model, d_head] and W_O[head, d_head, d_model], so each head's
write into the residual stream, z[h] @ W_O[h], is first-class: `hook_result` is the per-head ΔE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from interp.config import ModelConfig
from interp.hooks import HookPoint
from interp.layers.sequence_info import SequenceInfo


def per_head_param(n_heads: int, d_model: int, d_head: int) -> nn.Parameter:
    """A [head, d_model, d_head] parameter laid out in memory as [d_model, head, d_head].

    All heads' projections then run as one matmul on a free view (d_model x head*d_head), instead of a
    copy of the weights on every forward, while the logical shape stays per head.
    """
    return nn.Parameter(torch.empty(d_model, n_heads, d_head).transpose(0, 1))


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        h, kv, m, d = cfg.n_heads, cfg.kv_heads, cfg.d_model, cfg.d_head
        self.n_heads, self.n_kv_heads, self.d_head = h, kv, d
        self.layer = layer  # its slot in a KV cache
        self.window = cfg.window(layer)  # None: full causal attention
        self.W_Q = per_head_param(h, m, d)
        self.W_K = per_head_param(kv, m, d)
        self.W_V = per_head_param(kv, m, d)
        self.W_O = nn.Parameter(torch.empty(h, d, m))
        self.b_Q = nn.Parameter(torch.zeros(h, d)) if cfg.qkv_bias else None
        self.b_K = nn.Parameter(torch.zeros(kv, d)) if cfg.qkv_bias else None
        self.b_V = nn.Parameter(torch.zeros(kv, d)) if cfg.qkv_bias else None
        self.b_O = nn.Parameter(torch.zeros(m)) if cfg.attn_out_bias else None
        self.scale = 1.0 / math.sqrt(d)
        self.hook_q = HookPoint()  # [batch, pos, head, d_head]
        self.hook_k = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_v = HookPoint()  # [batch, pos, kv_head, d_head]
        self.hook_attn_scores = HookPoint()  # [batch, head, query_pos, key_pos], masked entries -inf
        self.hook_pattern = HookPoint()  # [batch, head, query_pos, key_pos]
        self.hook_z = HookPoint()  # [batch, pos, head, d_head]: pattern-weighted values
        self.hook_result = HookPoint()  # [batch, pos, head, d_model]: each head's ΔE (only when hooked)

    def forward(
        self, x: Float[Tensor, "batch pos d_model"], seq: SequenceInfo
    ) -> Float[Tensor, "batch pos d_model"]:
        q = self.hook_q(self._project(x, self.W_Q, self.b_Q))
        k = self.hook_k(self._project(x, self.W_K, self.b_K))
        v = self.hook_v(self._project(x, self.W_V, self.b_V))
        q, k = self.rotate(q, k, seq)
        # [batch, pos, head, d] -> [batch, head, pos, d]; grouped kv heads are shared by n_heads // kv queries.
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if seq.kv_cache is not None:  # the new positions' keys and values join the cached ones
            k, v = seq.kv_cache.extend(self.layer, k, v)
        if self.hook_attn_scores.active or self.hook_pattern.active:
            z = self._explicit(q, k, v, seq)
        else:
            z = self._fused(q, k, v, seq)
        z = self.hook_z(z.transpose(1, 2))
        if self.hook_result.active:
            result = self.hook_result(torch.einsum("bphd,hdm->bphm", z, self.W_O))
            attn_out = result.sum(2)
        else:
            attn_out = z.flatten(2) @ self.W_O.flatten(0, 1)
        return attn_out if self.b_O is None else attn_out + self.b_O

    def rotate(self, q: Tensor, k: Tensor, seq: SequenceInfo) -> tuple[Tensor, Tensor]:
        """Position information enters through the residual stream here; RotaryAttention overrides."""
        return q, k

    @staticmethod
    def _project(x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
        n, m, d = W.shape
        W_flat = W.transpose(0, 1).reshape(m, n * d)  # a view thanks to per_head_param's layout
        out = F.linear(x, W_flat.t(), None if b is None else b.reshape(n * d))
        return out.unflatten(-1, (n, d))

    def _explicit(self, q: Tensor, k: Tensor, v: Tensor, seq: SequenceInfo) -> Tensor:
        group = self.n_heads // self.n_kv_heads
        if group > 1:  # grouped-query: each kv head serves `group` query heads
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = (q @ k.transpose(-1, -2)) * self.scale  # a fresh tensor, so masking in place is safe
        scores = self.hook_attn_scores(scores.masked_fill_(~seq.mask(self.window), float("-inf")))
        # Softmax in at least float32 (half-precision models), without demoting float64 ones.
        pattern = self.hook_pattern(
            scores.softmax(-1, dtype=torch.promote_types(q.dtype, torch.float32)).to(q.dtype)
        )
        return pattern @ v

    def _fused(self, q: Tensor, k: Tensor, v: Tensor, seq: SequenceInfo) -> Tensor:
        mask, causal = seq.sdpa_mask(self.window)
        return F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            scale=self.scale,
            enable_gqa=self.n_kv_heads != self.n_heads,
        )


class RotaryAttention(Attention):
    """Attention with rotary position embeddings (LLaMA's rotate-half convention)."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        self.rope_key = (cfg.d_head, cfg.rotary_base)  # no buffer: model.to(bfloat16) must not round it
        self.hook_rot_q = HookPoint()  # [batch, pos, head, d_head], after rotation
        self.hook_rot_k = HookPoint()

    def rotate(self, q: Tensor, k: Tensor, seq: SequenceInfo) -> tuple[Tensor, Tensor]:
        cos, sin = seq.rope(*self.rope_key, q.dtype)
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
        return self.hook_rot_q(q * cos + _rotate_half(q) * sin), self.hook_rot_k(
            k * cos + _rotate_half(k) * sin
        )


def _rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def make_attention(cfg: ModelConfig, layer: int) -> Attention:
    return RotaryAttention(cfg, layer) if cfg.positional == "rotary" else Attention(cfg, layer)
