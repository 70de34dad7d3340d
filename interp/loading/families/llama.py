"""LLaMA (1-3.2, with RoPE scaling), Mistral and Qwen2: RMSNorm, RoPE, SwiGLU, GQA, windows, biases."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig
from interp.errors import LoadError
from interp.loading.checkpoint import Checkpoint
from interp.loading.families.base import ConfigFn, Family
from interp.loading.families.common import context, rope_parameters, rope_scaling, rope_theta, tied, windows


def llama_config(qkv_bias: Callable[[Any], bool], out_bias: Callable[[Any], bool]) -> ConfigFn:
    """LLaMA, Mistral and Qwen2 share names and layout; they differ in which biases exist and in windows."""

    def config(hf: Any, ck: Checkpoint) -> ModelConfig:
        rope = rope_parameters(hf)
        scaling = rope_scaling(rope, hf)  # Llama 3.1 / 3.2: "llama3"
        if getattr(hf, "hidden_act", "silu") != "silu":
            raise LoadError(f"unsupported activation {hf.hidden_act!r}; supported: silu")
        m, h, n = hf.hidden_size, hf.num_attention_heads, hf.num_hidden_layers
        kv = getattr(hf, "num_key_value_heads", None) or h
        d = getattr(hf, "head_dim", None) or m // h
        mlp, v = hf.intermediate_size, hf.vocab_size
        mlp_bias = bool(getattr(hf, "mlp_bias", False))
        return ModelConfig(
            d_model=m, n_layers=n, n_heads=h, d_head=d, d_mlp=mlp, d_vocab=v, n_ctx=context(hf, scaling),
            n_kv_heads=kv, norm="rmsnorm", norm_eps=hf.rms_norm_eps, act_fn="silu", gated_mlp=True,
            positional="rotary", rotary_base=rope_theta(rope, hf), rope_scaling=scaling,
            qkv_bias=qkv_bias(hf), attn_out_bias=out_bias(hf), mlp_bias=mlp_bias,
            tie_embeddings=tied(hf, ck, "embed_tokens.weight"), attn_windows=windows(hf, n),
        )  # fmt: skip

    return config


def weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    m, h, n, kv, d = cfg.d_model, cfg.n_heads, cfg.n_layers, cfg.kv_heads, cfg.d_head
    mlp, v, mlp_bias = cfg.d_mlp, cfg.d_vocab, cfg.mlp_bias
    yield "embed.W_E", ck.take("embed_tokens.weight", (v, m))
    for i in range(n):
        src, dst = f"layers.{i}.", f"blocks.{i}."
        for name, heads in (("q", h), ("k", kv), ("v", kv)):
            w = ck.take(src + f"self_attn.{name}_proj.weight", (heads * d, m))  # Linear: [d_out, d_in]
            yield dst + f"attn.W_{name.upper()}", w.reshape(heads, d, m).transpose(1, 2)
            if cfg.qkv_bias:
                b = ck.take(src + f"self_attn.{name}_proj.bias", (heads * d,))
                yield dst + f"attn.b_{name.upper()}", b.reshape(heads, d)
        yield dst + "attn.W_O", ck.take(src + "self_attn.o_proj.weight", (m, h * d)).T.reshape(h, d, m)
        if cfg.attn_out_bias:
            yield dst + "attn.b_O", ck.take(src + "self_attn.o_proj.bias", (m,))
        for hf_name, ours, shape in (("gate_proj", "W_gate", (mlp, m)), ("up_proj", "W_in", (mlp, m)), ("down_proj", "W_out", (m, mlp))):  # fmt: skip
            yield dst + f"mlp.{ours}", ck.take(src + f"mlp.{hf_name}.weight", shape).T
            if mlp_bias:
                bias = "b" + ours[1:]
                yield dst + f"mlp.{bias}", ck.take(src + f"mlp.{hf_name}.bias", (shape[0],))
        yield dst + "ln1.w", ck.take(src + "input_layernorm.weight", (m,))
        yield dst + "ln2.w", ck.take(src + "post_attention_layernorm.weight", (m,))
    yield "ln_final.w", ck.take("norm.weight", (m,))
    if not cfg.tie_embeddings:
        yield "unembed.W_U", ck.take("lm_head.weight", (v, m)).T


def _attention_bias(hf: Any) -> bool:
    return bool(getattr(hf, "attention_bias", False))


_with_attention_bias = llama_config(_attention_bias, _attention_bias)
LLAMA = Family(("LlamaForCausalLM",), ("llama",), "model.", _with_attention_bias, weights)
MISTRAL = Family(("MistralForCausalLM",), ("mistral",), "model.", _with_attention_bias, weights)
# Qwen2 always has q/k/v biases and none on o_proj; its tokenizer has no BOS token.
QWEN2 = Family(
    ("Qwen2ForCausalLM",), ("qwen2",), "model.", llama_config(lambda hf: True, lambda hf: False), weights
)
