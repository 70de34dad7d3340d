"""One transformer block, written as the residual stream story E' = E + ΔE."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from interp.config import ModelConfig
from interp.hooks import HookPoint
from interp.layers.attention import make_attention
from interp.layers.mlp import make_mlp
from interp.layers.norms import make_norm
from interp.layers.sequence_info import SequenceInfo


class TransformerBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        # Registered in execution order, so model.hook_names() reads like the forward pass.
        self.hook_resid_pre = HookPoint()
        self.ln1 = make_norm(cfg)
        self.attn = make_attention(cfg, layer)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln2 = make_norm(cfg)
        self.mlp = make_mlp(cfg)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(
        self, resid_pre: Float[Tensor, "batch pos d_model"], seq: SequenceInfo
    ) -> Float[Tensor, "batch pos d_model"]:
        resid_pre = self.hook_resid_pre(resid_pre)
        attn_out = self.hook_attn_out(
            self.attn(self.ln1(resid_pre), seq)
        )  # ΔE from attention: context moves in
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(resid_mid)))  # ΔE from the MLP: memories recalled
        return self.hook_resid_post(resid_mid + mlp_out)
