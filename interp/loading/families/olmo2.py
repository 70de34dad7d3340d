"""OLMo 2 (`Olmo2ForCausalLM`): no pre-norms; RMSNorm on attention's and the MLP's outputs (ln1_post,
ln2_post, inside the ΔE), and QK-norm over the whole q / k projection rather than per head."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig, NormLayout
from interp.loading.checkpoint import Checkpoint
from interp.loading.families.base import Family
from interp.loading.families.common import (
    context,
    gated_mlp,
    hf_act,
    rope_parameters,
    rope_scaling,
    rope_theta,
    separate_qkvo,
    tied,
)


def config(hf: Any, ck: Checkpoint) -> ModelConfig:
    rope = rope_parameters(hf)
    scaling = rope_scaling(rope, hf)
    m, h = hf.hidden_size, hf.num_attention_heads
    bias = bool(getattr(hf, "attention_bias", False))
    return ModelConfig(
        d_model=m, n_layers=hf.num_hidden_layers, n_heads=h, n_kv_heads=hf.num_key_value_heads,
        d_head=getattr(hf, "head_dim", None) or m // h, d_mlp=hf.intermediate_size, d_vocab=hf.vocab_size,
        n_ctx=context(hf, scaling), norm="rmsnorm", norm_eps=hf.rms_norm_eps, act_fn=hf_act(hf.hidden_act, {"silu": "silu"}),
        gated_mlp=True, positional="rotary", rotary_base=rope_theta(rope, hf), rope_scaling=scaling,
        qkv_bias=bias, attn_out_bias=bias, mlp_bias=False, tie_embeddings=tied(hf, ck, "embed_tokens.weight"),
        norms=NormLayout(pre=False, post=True, qk_norm="full"),
    )  # fmt: skip


def weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    m, h, kv, d, v = cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.d_head, cfg.d_vocab
    yield "embed.W_E", ck.take("embed_tokens.weight", (v, m))
    for i in range(cfg.n_layers):
        src, dst = f"layers.{i}.", f"blocks.{i}."
        yield from separate_qkvo(cfg, ck, src, dst)
        yield dst + "attn.q_norm.w", ck.take(src + "self_attn.q_norm.weight", (h * d,))
        yield dst + "attn.k_norm.w", ck.take(src + "self_attn.k_norm.weight", (kv * d,))
        yield from gated_mlp(cfg, ck, src, dst)
        # OLMo 2 reuses LLaMA's name for a different place: post_attention_layernorm follows attention.
        yield dst + "ln1_post.w", ck.take(src + "post_attention_layernorm.weight", (m,))
        yield dst + "ln2_post.w", ck.take(src + "post_feedforward_layernorm.weight", (m,))
    yield "ln_final.w", ck.take("norm.weight", (m,))
    if not cfg.tie_embeddings:
        yield "unembed.W_U", ck.take("lm_head.weight", (v, m)).T


OLMO2 = Family(("Olmo2ForCausalLM",), ("olmo2",), "model.", config, weights)
