"""One transformer block, written as the residual stream story E' = E + ΔE.

Three shapes, chosen once by `make_block`:
- `TransformerBlock` (GPT-2, LLaMA, Gemma, OLMo 2): attention's ΔE, then the MLP's, each optionally
  followed by a post-norm (`ln1_post`, `ln2_post`) that is part of the ΔE: `attn_out` is what is added;
- `ParallelBlock` (GPT-NeoX, GPT-J): both read resid_pre, resid_post = resid_pre + attn_out + mlp_out;
- `PostLNBlock` (OPT-350m): the norm renormalises the residual itself after each add.
"""

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

Resid = Float[Tensor, "batch pos d_model"]


def _norm_or_identity(cfg: ModelConfig, present: bool) -> nn.Module:
    return make_norm(cfg) if present else nn.Identity()


def _input_hooks(block: nn.Module) -> None:
    """TransformerLens's per-head attention inputs [batch, pos, head, d_model] and the MLP's own copy of
    its input: computed only while hooked (interp.compat.split_inputs)."""
    block.hook_attn_in = HookPoint()
    block.hook_q_input = HookPoint()
    block.hook_k_input = HookPoint()
    block.hook_v_input = HookPoint()
    block.hook_mlp_in = HookPoint()


def _attention(block: nn.Module, resid_pre: Resid, seq: SequenceInfo) -> Resid:
    if per_head_inputs_hooked(block):  # TL's split inputs: each head reads its own copy of resid_pre
        return split_attention(block, resid_pre, seq)
    return block.attn(block.ln1(resid_pre), seq)


def _mlp_input(block: nn.Module, x: Resid) -> Resid:
    return block.hook_mlp_in(x.clone()) if block.hook_mlp_in.active else x


class TransformerBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        pre, post = cfg.norms.pre, cfg.norms.post
        # Registered in execution order, so model.hook_names() reads like the forward pass.
        self.hook_resid_pre = HookPoint()
        _input_hooks(self)
        self.ln1 = _norm_or_identity(cfg, pre)
        self.attn = make_attention(cfg, layer)
        self.ln1_post = _norm_or_identity(cfg, post)
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.ln2 = _norm_or_identity(cfg, pre)
        self.mlp = make_mlp(cfg)
        self.ln2_post = _norm_or_identity(cfg, post)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid_pre: Resid, seq: SequenceInfo) -> Resid:
        resid_pre = self.hook_resid_pre(resid_pre)
        seq = seq.to(resid_pre.device)  # a placed block runs where its resid arrives: masks and RoPE too
        # ΔE from attention: context moves in
        attn_out = self.hook_attn_out(self.ln1_post(_attention(self, resid_pre, seq)))
        resid_mid = self.hook_resid_mid(resid_pre + attn_out)
        # ΔE from the MLP: memories recalled
        mlp_out = self.hook_mlp_out(self.ln2_post(self.mlp(self.ln2(_mlp_input(self, resid_mid)))))
        return self.hook_resid_post(resid_mid + mlp_out)


class ParallelBlock(nn.Module):
    """Attention and MLP read the same resid_pre and both write into resid_post (GPT-NeoX, separate norms)."""

    absent_hooks = {
        "hook_resid_mid": "a parallel block (attention and MLP both read resid_pre and write resid_post "
        "together) has no residual state between them; hook resid_pre, attn_out or mlp_out instead"
    }

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.hook_resid_pre = HookPoint()
        _input_hooks(self)
        self.ln1 = make_norm(cfg)
        self.attn = make_attention(cfg, layer)
        self.hook_attn_out = HookPoint()
        self.ln2 = self._mlp_norm(cfg)
        self.mlp = make_mlp(cfg)
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def _mlp_norm(self, cfg: ModelConfig) -> nn.Module | None:
        return make_norm(cfg)

    def forward(self, resid_pre: Resid, seq: SequenceInfo) -> Resid:
        resid_pre = self.hook_resid_pre(resid_pre)
        seq = seq.to(resid_pre.device)  # a placed block runs where its resid arrives: masks and RoPE too
        attn_out = self.hook_attn_out(_attention(self, resid_pre, seq))
        mlp_out = self.hook_mlp_out(self.mlp(self.ln2(_mlp_input(self, resid_pre))))
        return self.hook_resid_post(resid_pre + attn_out + mlp_out)


class SharedNormParallelBlock(ParallelBlock):
    """GPT-J: one norm, ln1, feeds both attention and the MLP (computed once, so its hooks fire once)."""

    def _mlp_norm(self, cfg: ModelConfig) -> None:
        return None

    def forward(self, resid_pre: Resid, seq: SequenceInfo) -> Resid:
        resid_pre = self.hook_resid_pre(resid_pre)
        seq = seq.to(resid_pre.device)  # a placed block runs where its resid arrives: masks and RoPE too
        if per_head_inputs_hooked(self) or self.hook_mlp_in.active:  # TL's input copies, each normed itself
            attn_out = self.hook_attn_out(_attention(self, resid_pre, seq))
            mlp_out = self.hook_mlp_out(self.mlp(self.ln1(_mlp_input(self, resid_pre))))
        else:
            normed = self.ln1(resid_pre)
            attn_out = self.hook_attn_out(self.attn(normed, seq))
            mlp_out = self.hook_mlp_out(self.mlp(normed))
        return self.hook_resid_post(resid_pre + attn_out + mlp_out)


class PostLNBlock(nn.Module):
    """OPT-350m's post-LN: resid_mid = ln1(resid_pre + attn_out), resid_post = ln2(resid_mid + mlp_out).

    The norms act on the residual itself, so it is not a sum of the components' writes."""

    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.hook_resid_pre = HookPoint()
        self.attn = make_attention(cfg, layer)
        self.hook_attn_out = HookPoint()
        self.ln1 = make_norm(cfg)
        self.hook_resid_mid = HookPoint()
        self.mlp = make_mlp(cfg)
        self.hook_mlp_out = HookPoint()
        self.ln2 = make_norm(cfg)
        self.hook_resid_post = HookPoint()

    def forward(self, resid_pre: Resid, seq: SequenceInfo) -> Resid:
        resid_pre = self.hook_resid_pre(resid_pre)
        seq = seq.to(resid_pre.device)  # a placed block runs where its resid arrives: masks and RoPE too
        attn_out = self.hook_attn_out(self.attn(resid_pre, seq))
        resid_mid = self.hook_resid_mid(self.ln1(resid_pre + attn_out))
        mlp_out = self.hook_mlp_out(self.mlp(resid_mid))
        return self.hook_resid_post(self.ln2(resid_mid + mlp_out))


def make_block(cfg: ModelConfig, layer: int) -> nn.Module:
    if cfg.norms.residual:
        return PostLNBlock(cfg, layer)
    if cfg.parallel_attn_mlp:
        cls = SharedNormParallelBlock if cfg.norms.shared_ln else ParallelBlock
        return cls(cfg, layer)
    return TransformerBlock(cfg, layer)
