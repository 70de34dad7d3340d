"""GPT-2 (`GPT2LMHeadModel`): LayerNorm, learned positions, fused Conv1D qkv, GELU."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig
from interp.errors import LoadError
from interp.loading.checkpoint import Checkpoint
from interp.loading.families.base import Family
from interp.loading.families.common import tied


def config(hf: Any, ck: Checkpoint) -> ModelConfig:
    if getattr(hf, "scale_attn_by_inverse_layer_idx", False) or not getattr(hf, "scale_attn_weights", True):
        raise LoadError("GPT-2 variants with non-standard attention scaling are not supported")
    act = {"gelu_new": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu"}
    if hf.activation_function not in act:
        raise LoadError(f"unsupported GPT-2 activation {hf.activation_function!r}; supported: {sorted(act)}")
    m, h = hf.n_embd, hf.n_head
    d, mlp = m // h, hf.n_inner or 4 * hf.n_embd
    return ModelConfig(
        d_model=m, n_layers=hf.n_layer, n_heads=h, d_head=d, d_mlp=mlp, d_vocab=hf.vocab_size,
        n_ctx=hf.n_positions, norm="layernorm", norm_eps=hf.layer_norm_epsilon,
        act_fn=act[hf.activation_function], positional="learned",
        tie_embeddings=tied(hf, ck, "wte.weight"),
    )  # fmt: skip


def weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    m, h, d, mlp = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp
    yield "embed.W_E", ck.take("wte.weight", (hf.vocab_size, m))
    yield "pos_embed.W_pos", ck.take("wpe.weight", (hf.n_positions, m))
    for i in range(hf.n_layer):
        src, dst = f"h.{i}.", f"blocks.{i}."
        qkv_w = ck.take(src + "attn.c_attn.weight", (m, 3 * m))  # Conv1D: [d_in, d_out]
        qkv_b = ck.take(src + "attn.c_attn.bias", (3 * m,))
        for j, name in enumerate("QKV"):
            yield dst + f"attn.W_{name}", qkv_w[:, j * m : (j + 1) * m].reshape(m, h, d).permute(1, 0, 2)
            yield dst + f"attn.b_{name}", qkv_b[j * m : (j + 1) * m].reshape(h, d)
        yield dst + "attn.W_O", ck.take(src + "attn.c_proj.weight", (m, m)).reshape(h, d, m)
        yield dst + "attn.b_O", ck.take(src + "attn.c_proj.bias", (m,))
        yield dst + "mlp.W_in", ck.take(src + "mlp.c_fc.weight", (m, mlp))
        yield dst + "mlp.b_in", ck.take(src + "mlp.c_fc.bias", (mlp,))
        yield dst + "mlp.W_out", ck.take(src + "mlp.c_proj.weight", (mlp, m))
        yield dst + "mlp.b_out", ck.take(src + "mlp.c_proj.bias", (m,))
        for ln, ours in (("ln_1", "ln1"), ("ln_2", "ln2")):
            yield dst + f"{ours}.w", ck.take(src + f"{ln}.weight", (m,))
            yield dst + f"{ours}.b", ck.take(src + f"{ln}.bias", (m,))
    yield "ln_final.w", ck.take("ln_f.weight", (m,))
    yield "ln_final.b", ck.take("ln_f.bias", (m,))
    if not cfg.tie_embeddings:
        yield "unembed.W_U", ck.take("lm_head.weight", (hf.vocab_size, m)).T


FAMILY = Family(("GPT2LMHeadModel",), ("gpt2",), "transformer.", config, weights)
