"""LayerNorm (GPT-2) and RMSNorm (LLaMA family), each with `hook_scale` and `hook_normalized`.

With no hook attached they call the fused kernels; with a hook they write the normalisation out so the
scale (the divisor) and the normalised vector can be read or edited, as TransformerLens does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from interp.config import ModelConfig
from interp.hooks import HookPoint


class LayerNorm(nn.Module):
    def __init__(self, cfg: ModelConfig, length: int | None = None) -> None:
        super().__init__()
        self.eps = cfg.norm_eps
        self.w = nn.Parameter(torch.ones(length or cfg.d_model))
        self.b = nn.Parameter(torch.zeros(length or cfg.d_model))
        self.hook_scale = HookPoint()  # [batch, pos, 1]
        self.hook_normalized = HookPoint()  # [batch, pos, d_model], before w and b

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        if not (self.hook_scale.active or self.hook_normalized.active):
            return F.layer_norm(x, self.w.shape, self.w, self.b, self.eps)
        var, mean = torch.var_mean(x, -1, correction=0, keepdim=True)  # one pass over x for both
        scale = self.hook_scale((var + self.eps).sqrt())
        return torch.addcmul(self.b, self.hook_normalized((x - mean) / scale), self.w)

    def center(self, x: Tensor) -> Tensor:
        """The linear part applied before dividing by the scale (used to push stacks through a frozen LN)."""
        return x - x.mean(-1, keepdim=True)


class RMSNorm(nn.Module):
    """RMSNorm. Gemma's (1 + w) form is folded into w by its loader, so one class serves every family."""

    def __init__(self, cfg: ModelConfig, length: int | None = None) -> None:
        super().__init__()
        self.eps = cfg.norm_eps
        self.w = nn.Parameter(torch.ones(length or cfg.d_model))
        self.hook_scale = HookPoint()
        self.hook_normalized = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        # Normalise in (at least) float32 and cast back before the weight, as Hugging Face's LlamaRMSNorm.
        dtype = x.dtype
        x = x.to(torch.promote_types(dtype, torch.float32))
        if not (self.hook_scale.active or self.hook_normalized.active):
            return self.w * F.rms_norm(x, self.w.shape, None, self.eps).to(dtype)
        scale = self.hook_scale((x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
        return self.w * self.hook_normalized(x / scale).to(dtype)

    def center(self, x: Tensor) -> Tensor:
        return x


class HeadsRMSNorm(RMSNorm):
    """OLMo 2's QK-norm: one RMSNorm over the whole projection [.., head, d_head], not per head."""

    def forward(self, x: Float[Tensor, "batch pos head d_head"]) -> Float[Tensor, "batch pos head d_head"]:
        return super().forward(x.flatten(-2)).unflatten(-1, x.shape[-2:])


def make_norm(cfg: ModelConfig, length: int | None = None) -> LayerNorm | RMSNorm:
    return {"layernorm": LayerNorm, "rmsnorm": RMSNorm}[cfg.norm](cfg, length)


def make_qk_norms(cfg: ModelConfig) -> tuple[nn.Module | None, nn.Module | None]:
    """(q_norm, k_norm) as TransformerLens names them, or (None, None). Always RMSNorm, as in every family."""
    if cfg.norms.qk_norm == "head":
        return RMSNorm(cfg, cfg.d_head), RMSNorm(cfg, cfg.d_head)
    if cfg.norms.qk_norm == "full":
        return HeadsRMSNorm(cfg, cfg.n_heads * cfg.d_head), HeadsRMSNorm(cfg, cfg.kv_heads * cfg.d_head)
    return None, None
