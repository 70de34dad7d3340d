"""Phi-3 (`Phi3ForCausalLM`): LLaMA's block with fused qkv_proj and gate_up_proj checkpoints, partial
rotary (`partial_rotary_factor`), LongRoPE scaling and an optional sliding window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig
from interp.loading.checkpoint import Checkpoint
from interp.loading.families.base import Family
from interp.loading.families.common import (
    context,
    hf_act,
    linear_out,
    rope_parameters,
    rope_scaling,
    rope_theta,
    tied,
    windows,
)


def config(hf: Any, ck: Checkpoint) -> ModelConfig:
    rope = rope_parameters(hf)
    scaling = rope_scaling(rope, hf)
    m, h, n = hf.hidden_size, hf.num_attention_heads, hf.num_hidden_layers
    d = getattr(hf, "head_dim", None) or m // h
    rotary = int(d * rope.get("partial_rotary_factor", getattr(hf, "partial_rotary_factor", 1.0)))
    return ModelConfig(
        d_model=m, n_layers=n, n_heads=h, n_kv_heads=hf.num_key_value_heads or h, d_head=d,
        d_mlp=hf.intermediate_size, d_vocab=hf.vocab_size, n_ctx=context(hf, scaling), norm="rmsnorm",
        norm_eps=hf.rms_norm_eps, act_fn=hf_act(hf.hidden_act, {"silu": "silu"}), gated_mlp=True,
        positional="rotary", rotary_base=rope_theta(rope, hf), rope_scaling=scaling,
        rotary_dim=None if rotary == d else rotary, qkv_bias=False, attn_out_bias=False, mlp_bias=False,
        tie_embeddings=tied(hf, ck, "embed_tokens.weight"), attn_windows=windows(hf, n),
    )  # fmt: skip


def weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    m, h, kv, d, mlp, v = cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab
    yield "embed.W_E", ck.take("embed_tokens.weight", (v, m))
    for i in range(cfg.n_layers):
        src, dst = f"layers.{i}.", f"blocks.{i}."
        qkv = ck.take(src + "self_attn.qkv_proj.weight", ((h + 2 * kv) * d, m))  # rows: q, then k, then v
        for name, rows in zip("QKV", qkv.split([h * d, kv * d, kv * d]), strict=True):
            yield dst + f"attn.W_{name}", rows.reshape(-1, d, m).transpose(1, 2)
        yield dst + "attn.W_O", linear_out(ck, src + "self_attn.o_proj.weight", h, d, m)
        gate, up = ck.take(src + "mlp.gate_up_proj.weight", (2 * mlp, m)).chunk(2)  # gate first, then up
        yield dst + "mlp.W_gate", gate.T
        yield dst + "mlp.W_in", up.T
        yield dst + "mlp.W_out", ck.take(src + "mlp.down_proj.weight", (m, mlp)).T
        yield dst + "ln1.w", ck.take(src + "input_layernorm.weight", (m,))
        yield dst + "ln2.w", ck.take(src + "post_attention_layernorm.weight", (m,))
    yield "ln_final.w", ck.take("norm.weight", (m,))
    if not cfg.tie_embeddings:
        yield "unembed.W_U", ck.take("lm_head.weight", (v, m)).T


PHI3 = Family(("Phi3ForCausalLM",), ("phi3",), "model.", config, weights)
