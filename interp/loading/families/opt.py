"""OPT (`OPTForCausalLM`): LayerNorm, learned positions (with OPT's offset of 2), ReLU, biases.

Also the post-LN variant (`do_layer_norm_before=False`, opt-350m), whose norms renormalise the residual
after each add and which embeds in `word_embed_proj_dim`, projected in and out (`project_in/out`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig, NormLayout
from interp.errors import LoadError
from interp.loading.checkpoint import Checkpoint
from interp.loading.families.base import Family
from interp.loading.families.common import hf_act, linear_heads, tied

OFFSET = 2  # OPT's learned positions start at row 2 (rows 0 and 1 are a fairseq padding artefact)
_ACT = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_new", "silu": "silu"}


def config(hf: Any, ck: Checkpoint) -> ModelConfig:
    if not getattr(hf, "layer_norm_elementwise_affine", True):
        raise LoadError("OPT without elementwise-affine LayerNorms is not supported")
    m, h = hf.hidden_size, hf.num_attention_heads
    pre = bool(hf.do_layer_norm_before)
    final = pre and not getattr(hf, "_remove_final_layer_norm", False)
    d_embed = hf.word_embed_proj_dim
    bias = bool(getattr(hf, "enable_bias", True))
    return ModelConfig(
        d_model=m, n_layers=hf.num_hidden_layers, n_heads=h, d_head=m // h, d_mlp=hf.ffn_dim,
        d_vocab=hf.vocab_size, n_ctx=hf.max_position_embeddings, norm="layernorm", norm_eps=1e-5,
        act_fn=hf_act(hf.activation_function, _ACT), positional="learned", qkv_bias=bias, attn_out_bias=bias,
        mlp_bias=bias, tie_embeddings=tied(hf, ck, "embed_tokens.weight"),
        d_embed=None if d_embed == m else d_embed, norms=NormLayout(residual=not pre, final=final),
    )  # fmt: skip


def weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    m, h, d, mlp, v, e = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab, cfg.embed_width
    yield "embed.W_E", ck.take("embed_tokens.weight", (v, e))
    yield "pos_embed.W_pos", ck.take("embed_positions.weight", (cfg.n_ctx + OFFSET, m))[OFFSET:]
    if cfg.d_embed is not None:
        yield "embed.W_project_in", ck.take("project_in.weight", (m, e)).T
        yield "unembed.W_project_out", ck.take("project_out.weight", (e, m)).T
    for i in range(cfg.n_layers):
        src, dst = f"layers.{i}.", f"blocks.{i}."
        for name, ours in (("q", "Q"), ("k", "K"), ("v", "V")):
            yield dst + f"attn.W_{ours}", linear_heads(ck, src + f"self_attn.{name}_proj.weight", h, d, m)
            if cfg.qkv_bias:
                yield dst + f"attn.b_{ours}", ck.take(src + f"self_attn.{name}_proj.bias", (m,)).reshape(h, d)
        yield dst + "attn.W_O", ck.take(src + "self_attn.out_proj.weight", (m, m)).T.reshape(h, d, m)
        if cfg.attn_out_bias:
            yield dst + "attn.b_O", ck.take(src + "self_attn.out_proj.bias", (m,))
        yield dst + "mlp.W_in", ck.take(src + "fc1.weight", (mlp, m)).T
        yield dst + "mlp.W_out", ck.take(src + "fc2.weight", (m, mlp)).T
        if cfg.mlp_bias:
            yield dst + "mlp.b_in", ck.take(src + "fc1.bias", (mlp,))
            yield dst + "mlp.b_out", ck.take(src + "fc2.bias", (m,))
        # OPT's per-layer "final_layer_norm" is the MLP's norm (before it, or after the add in post-LN).
        for hf_name, ours in (("self_attn_layer_norm", "ln1"), ("final_layer_norm", "ln2")):
            yield dst + f"{ours}.w", ck.take(src + f"{hf_name}.weight", (m,))
            yield dst + f"{ours}.b", ck.take(src + f"{hf_name}.bias", (m,))
    if cfg.norms.final:
        yield "ln_final.w", ck.take("final_layer_norm.weight", (m,))
        yield "ln_final.b", ck.take("final_layer_norm.bias", (m,))
    if not cfg.tie_embeddings:
        key = "unembed.W_U" if cfg.d_embed is None else "unembed.vocab.W_U"
        yield key, ck.take("lm_head.weight", (v, e)).T


OPT = Family(("OPTForCausalLM",), ("opt",), "model.decoder.", config, weights)
