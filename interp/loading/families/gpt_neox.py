"""GPT-NeoX / Pythia (`GPTNeoXForCausalLM`): parallel attention + MLP (`use_parallel_residual`) with
separate norms, partial rotary (`rotary_pct`), a fused per-head qkv projection, exact GELU."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig
from interp.loading.checkpoint import Checkpoint
from interp.loading.families.base import Family
from interp.loading.families.common import context, hf_act, rope_parameters, rope_scaling, rope_theta, tied

_ACT = {"gelu": "gelu", "gelu_new": "gelu_new", "gelu_fast": "gelu_new", "relu": "relu", "silu": "silu"}


def config(hf: Any, ck: Checkpoint) -> ModelConfig:
    rope = rope_parameters(hf)
    scaling = rope_scaling(rope, hf)
    m, h = hf.hidden_size, hf.num_attention_heads
    d = m // h
    rotary = int(d * rope.get("partial_rotary_factor", getattr(hf, "rotary_pct", 1.0)))
    bias = bool(getattr(hf, "attention_bias", True))
    return ModelConfig(
        d_model=m, n_layers=hf.num_hidden_layers, n_heads=h, d_head=d, d_mlp=hf.intermediate_size,
        d_vocab=hf.vocab_size, n_ctx=context(hf, scaling), norm="layernorm", norm_eps=hf.layer_norm_eps,
        act_fn=hf_act(hf.hidden_act, _ACT), positional="rotary", rotary_base=rope_theta(rope, hf),
        rope_scaling=scaling, rotary_dim=None if rotary == d else rotary, qkv_bias=bias, attn_out_bias=bias,
        mlp_bias=True, tie_embeddings=tied(hf, ck, "embed_in.weight"),
        parallel_attn_mlp=bool(hf.use_parallel_residual),
    )  # fmt: skip


def weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    m, h, d, mlp, v = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab
    yield "embed.W_E", ck.take("embed_in.weight", (v, m))
    for i in range(cfg.n_layers):
        src, dst = f"layers.{i}.", f"blocks.{i}."
        # Rows are [head, (q | k | v), d_head]: each head's three projections sit together.
        qkv = ck.take(src + "attention.query_key_value.weight", (3 * m, m)).reshape(h, 3, d, m)
        for j, name in enumerate("QKV"):
            yield dst + f"attn.W_{name}", qkv[:, j].transpose(1, 2)
        if cfg.qkv_bias:
            qkv_b = ck.take(src + "attention.query_key_value.bias", (3 * m,)).reshape(h, 3, d)
            for j, name in enumerate("QKV"):
                yield dst + f"attn.b_{name}", qkv_b[:, j]
        yield dst + "attn.W_O", ck.take(src + "attention.dense.weight", (m, m)).T.reshape(h, d, m)
        if cfg.attn_out_bias:
            yield dst + "attn.b_O", ck.take(src + "attention.dense.bias", (m,))
        yield dst + "mlp.W_in", ck.take(src + "mlp.dense_h_to_4h.weight", (mlp, m)).T
        yield dst + "mlp.b_in", ck.take(src + "mlp.dense_h_to_4h.bias", (mlp,))
        yield dst + "mlp.W_out", ck.take(src + "mlp.dense_4h_to_h.weight", (m, mlp)).T
        yield dst + "mlp.b_out", ck.take(src + "mlp.dense_4h_to_h.bias", (m,))
        for hf_name, ours in (("input_layernorm", "ln1"), ("post_attention_layernorm", "ln2")):
            yield dst + f"{ours}.w", ck.take(src + f"{hf_name}.weight", (m,))
            yield dst + f"{ours}.b", ck.take(src + f"{hf_name}.bias", (m,))
    yield "ln_final.w", ck.take("final_layer_norm.weight", (m,))
    yield "ln_final.b", ck.take("final_layer_norm.bias", (m,))
    if not cfg.tie_embeddings:
        # transformers 5 names the head lm_head; Pythia's checkpoints on the Hub call it embed_out.
        key = "lm_head.weight" if ck.has("lm_head.weight") else "embed_out.weight"
        yield "unembed.W_U", ck.take(key, (v, m)).T


NEOX = Family(("GPTNeoXForCausalLM",), ("gpt_neox",), "gpt_neox.", config, weights)
