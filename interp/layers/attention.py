"""Multi-head attention with per-head weights, grouped-query heads, windows and optional RoPE.

Family variants are modules chosen at construction: QK-norms (`q_norm`, `k_norm`, TransformerLens's names),
a soft-cap on the scores, and the rotary spec (partial, GPT-J pairs, scaled frequencies).

Weights are stored per head, W_Q[head, d_model, d_head] and W_O[head, d_head, d_model], so each head's
write into the residual stream, z[h] @ W_O[h], is first-class: `hook_result` is the per-head ΔE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from interp.compat.weights import TLAttentionMixin
from interp.config import ModelConfig
from interp.hooks import HookPoint
from interp.layers.norms import make_qk_norms
from interp.layers.rope import RotarySpec, rotate_every_two, rotate_half
from interp.layers.sequence_info import SequenceInfo


class SoftCap(nn.Module):
    """cap * tanh(x / cap): Gemma 2's smooth bound on attention scores and logits."""

    def __init__(self, cap: float) -> None:
        super().__init__()
        self.cap = cap

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / self.cap) * self.cap

    def extra_repr(self) -> str:
        return f"cap={self.cap}"


def soft_cap(cap: float | None) -> nn.Module:
    return nn.Identity() if cap is None else SoftCap(cap)


def per_head_param(n_heads: int, d_model: int, d_head: int) -> nn.Parameter:
    """A [head, d_model, d_head] parameter laid out in memory as nn.Linear's [head * d_head, d_model].

    All heads' projections then run as one matmul on a free view (d_model x head*d_head, handed to F.linear
    contiguous, as `mlp.linear_param` explains), instead of a copy of the weights on every forward, while
    the logical shape stays per head.
    """
    return nn.Parameter(torch.empty(n_heads, d_head, d_model).transpose(1, 2))


def per_head_out_param(n_heads: int, d_head: int, d_model: int) -> nn.Parameter:
    """W_O, [head, d_head, d_model], laid out as nn.Linear's [d_model, head * d_head] (a free flat view)."""
    return nn.Parameter(torch.empty(d_model, n_heads, d_head).permute(1, 2, 0))


class Attention(TLAttentionMixin, nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        h, kv, m, d = cfg.n_heads, cfg.kv_heads, cfg.d_model, cfg.d_head
        self.n_heads, self.n_kv_heads, self.d_head = h, kv, d
        self.layer = layer  # its slot in a KV cache
        self.window = cfg.window(layer)  # None: full causal attention
        self.W_Q = per_head_param(h, m, d)
        self.W_K = per_head_param(kv, m, d)
        self.W_V = per_head_param(kv, m, d)
        self.W_O = per_head_out_param(h, d, m)
        self.b_Q = nn.Parameter(torch.zeros(h, d)) if cfg.qkv_bias else None
        self.b_K = nn.Parameter(torch.zeros(kv, d)) if cfg.qkv_bias else None
        self.b_V = nn.Parameter(torch.zeros(kv, d)) if cfg.qkv_bias else None
        self.b_O = nn.Parameter(torch.zeros(m)) if cfg.attn_out_bias else None
        self.scale = 1.0 / (cfg.attn_scale or math.sqrt(d))
        q_norm, k_norm = make_qk_norms(cfg)  # applied after hook_q / hook_k, before RoPE
        self.q_norm, self.k_norm = q_norm or nn.Identity(), k_norm or nn.Identity()
        cap = cfg.soft_caps.attn_scores_soft_cap
        self.score_cap = soft_cap(cap)
        self.explicit_only = cap is not None  # the fused kernel cannot soft-cap its scores
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
        q = self.q_norm(self.hook_q(self._project(x, self.W_Q, self.b_Q)))
        k = self.k_norm(self.hook_k(self._project(x, self.W_K, self.b_K)))
        v = self.hook_v(self._project(x, self.W_V, self.b_V))
        return self.attend(q, k, v, seq)

    def forward_per_head_inputs(
        self, q_in: Tensor, k_in: Tensor, v_in: Tensor, seq: SequenceInfo
    ) -> Float[Tensor, "batch pos d_model"]:
        """Each head reads its own normalised input [batch, pos, head (kv_head for k, v), d_model].

        TransformerLens's `use_split_qkv_input` / `use_attn_in` path (interp.compat.split_inputs), so a
        patch of one head's input reaches only that head.
        """
        q = self.q_norm(self.hook_q(_project_per_head(q_in, self.W_Q, self.b_Q)))
        k = self.k_norm(self.hook_k(_project_per_head(k_in, self.W_K, self.b_K)))
        v = self.hook_v(_project_per_head(v_in, self.W_V, self.b_V))
        return self.attend(q, k, v, seq)

    def attend(
        self, q: Tensor, k: Tensor, v: Tensor, seq: SequenceInfo
    ) -> Float[Tensor, "batch pos d_model"]:
        """Positions, attention and the output projection, from q/k/v [batch, pos, head, d_head]."""
        q, k = self.rotate(q, k, seq)
        # [batch, pos, head, d] -> [batch, head, pos, d]; grouped kv heads are shared by n_heads // kv queries.
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if seq.kv_cache is not None:  # the new positions' keys and values join the cached ones
            k, v = seq.kv_cache.extend(self.layer, k, v)
        if self.explicit_only or self.hook_attn_scores.active or self.hook_pattern.active:
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
        scores = self.score_cap((q @ k.transpose(-1, -2)) * self.scale)  # fresh: masking in place is safe
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
    """Attention with rotary position embeddings: rotate-half (LLaMA, NeoX) or every-two (GPT-J) pairs,
    on all of d_head or its first `rotary_dim` dims."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__(cfg, layer)
        self.rope_spec = RotarySpec.for_layer(cfg, layer)  # no buffer: model.to(bfloat16) must not round it
        self.rotate_pairs = rotate_every_two if cfg.rotary_adjacent_pairs else rotate_half
        self.apply_rope = self._rope_full if self.rope_spec.dim == cfg.d_head else self._rope_partial
        self.hook_rot_q = HookPoint()  # [batch, pos, head, d_head], after rotation
        self.hook_rot_k = HookPoint()

    def rotate(self, q: Tensor, k: Tensor, seq: SequenceInfo) -> tuple[Tensor, Tensor]:
        cos, sin = seq.rope(self.rope_spec, q.dtype)
        cos, sin = cos[:, :, None, :], sin[:, :, None, :]
        return self.hook_rot_q(self.apply_rope(q, cos, sin)), self.hook_rot_k(self.apply_rope(k, cos, sin))

    def _rope_full(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        return x * cos + self.rotate_pairs(x) * sin

    def _rope_partial(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        dim = self.rope_spec.dim
        rot, rest = x[..., :dim], x[..., dim:]
        return torch.cat((rot * cos + self.rotate_pairs(rot) * sin, rest), dim=-1)


def _project_per_head(x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
    out = torch.einsum("bphm,hmd->bphd", x, W)
    return out if b is None else out + b


def make_attention(cfg: ModelConfig, layer: int) -> Attention:
    return RotaryAttention(cfg, layer) if cfg.positional == "rotary" else Attention(cfg, layer)
