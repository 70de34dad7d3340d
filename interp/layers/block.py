"""One transformer block, written as the residual stream story E' = E + ΔE."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from interp.compat.split_inputs import per_head_inputs_hooked, split_attention
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
        # TransformerLens's per-head attention inputs [batch, pos, head, d_model], computed only when hooked.
        self.hook_attn_in = HookPoint()
        self.hook_q_input = HookPoint()
        self.hook_k_input = HookPoint()
        self.hook_v_input = HookPoint()
        self.ln1 = make_norm(cfg)
        self.attn = make_attention(cfg, layer)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_in = HookPoint()  # a copy of resid_mid that only the MLP reads (only when hooked)
        self.ln2 = make_norm(cfg)
        self.mlp = make_mlp(cfg)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(
        self, resid_pre: Float[Tensor, "batch pos d_model"], seq: SequenceInfo
    ) -> Float[Tensor, "batch pos d_model"]:
        resid_pre = self.hook_resid_pre(resid_pre)
        if per_head_inputs_hooked(self):  # TL's split inputs: each head reads its own copy of resid_pre
            attn_out = split_attention(self, resid_pre, seq)
        else:
            attn_out = self.attn(self.ln1(resid_pre), seq)
        attn_out = self.hook_attn_out(attn_out)  # ΔE from attention: context moves in
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        mlp_in = self.hook_mlp_in(resid_mid.clone()) if self.hook_mlp_in.active else resid_mid
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(mlp_in)))  # ΔE from the MLP: memories recalled
        return self.hook_resid_post(resid_mid + mlp_out)
