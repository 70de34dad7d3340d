"""Feed-forward layers: the key-value memories. `W_in` columns are keys, `W_out` rows are values."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from interp.config import ModelConfig
from interp.hooks import HookPoint

ACTIVATIONS = {
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's tanh approximation, one fused kernel
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),  # Gemma's name for the same function
    "gelu": F.gelu,
    "silu": F.silu,
    "relu": F.relu,
}


def linear(x: Tensor, W: Tensor, b: Tensor | None) -> Tensor:
    """x @ W + b for W [d_in, d_out]; F.linear on W.T reaches addmm with no copy of W."""
    return F.linear(x, W.t(), b)


def linear_param(d_in: int, d_out: int) -> nn.Parameter:
    """A [d_in, d_out] weight laid out in memory as nn.Linear's [d_out, d_in] (and most checkpoints').

    `linear` then hands F.linear a contiguous weight, as nn.Linear does. Measured on a 2-core AMD EPYC
    (MKL), one-token-row matmuls ran up to 1.4x slower on the transposed layout, and a Llama-shaped forward
    at 1x16 tokens 1.07-1.18x HF's instead of 1.00x (`experiments/benchmarks/forward_overhead.py`).
    """
    return nn.Parameter(torch.empty(d_out, d_in).t())


def _bias(use: bool, n: int) -> nn.Parameter | None:
    return nn.Parameter(torch.zeros(n)) if use else None


class MLP(nn.Module):
    """GPT-2 MLP: post = act(x W_in + b_in); out = post W_out + b_out."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.act = ACTIVATIONS[cfg.act_fn]
        self.W_in = linear_param(cfg.d_model, cfg.d_mlp)
        self.b_in = _bias(cfg.mlp_bias, cfg.d_mlp)
        self.W_out = linear_param(cfg.d_mlp, cfg.d_model)
        self.b_out = _bias(cfg.mlp_bias, cfg.d_model)
        self.hook_pre = HookPoint()  # [batch, pos, d_mlp]
        self.hook_post = HookPoint()  # [batch, pos, d_mlp]: the neuron activations

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(linear(x, self.W_in, self.b_in))
        post = self.hook_post(self.act(pre))
        return linear(post, self.W_out, self.b_out)


class GatedMLP(nn.Module):
    """SwiGLU MLP (LLaMA): post = act(x W_gate) * (x W_in); out = post W_out."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.act = ACTIVATIONS[cfg.act_fn]
        self.W_gate = linear_param(cfg.d_model, cfg.d_mlp)
        self.b_gate = _bias(cfg.mlp_bias, cfg.d_mlp)
        self.W_in = linear_param(cfg.d_model, cfg.d_mlp)
        self.b_in = _bias(cfg.mlp_bias, cfg.d_mlp)
        self.W_out = linear_param(cfg.d_mlp, cfg.d_model)
        self.b_out = _bias(cfg.mlp_bias, cfg.d_model)
        self.hook_pre = HookPoint()  # gate pre-activation, as TransformerLens names it
        self.hook_pre_linear = HookPoint()  # the linear (up) branch
        self.hook_post = HookPoint()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        pre = self.hook_pre(linear(x, self.W_gate, self.b_gate))
        pre_linear = self.hook_pre_linear(linear(x, self.W_in, self.b_in))
        post = self.hook_post(self.act(pre) * pre_linear)
        return linear(post, self.W_out, self.b_out)


def make_mlp(cfg: ModelConfig) -> MLP | GatedMLP:
    return GatedMLP(cfg) if cfg.gated_mlp else MLP(cfg)
