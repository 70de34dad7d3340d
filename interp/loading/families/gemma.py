"""Gemma 1, 2 and 3 (text): RMSNorm with (1 + w), embeddings scaled by sqrt(d_model), GeGLU (tanh GELU).

Gemma 2 adds sandwich norms (ln1_post / ln2_post around attention and the MLP), attention- and final-logit
soft-caps, the `query_pre_attn_scalar` scale and alternating local / global layers. Gemma 3 adds QK-norm
and a separate RoPE base for its local layers. The (1 + w) of every norm is folded into w here, so interp's
RMSNorm (and every analysis that reads a norm's weight) needs no Gemma case.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig, NormLayout, SoftCaps
from interp.errors import LoadError
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
    windows,
)

_ACT = {"gelu_pytorch_tanh": "gelu_pytorch_tanh", "gelu": "gelu_pytorch_tanh"}  # HF runs both as tanh GELU


def _text(hf: Any) -> Any:
    return getattr(hf, "text_config", None) or hf  # Gemma3ForConditionalGeneration wraps the text config


def _act(hf: Any) -> str:
    return hf_act(getattr(hf, "hidden_activation", None) or hf.hidden_act, _ACT)


def _base(hf: Any, ck: Checkpoint, **variant: Any) -> ModelConfig:
    m, h, n = hf.hidden_size, hf.num_attention_heads, hf.num_hidden_layers
    variant.setdefault("tie_embeddings", tied(hf, ck, "embed_tokens.weight"))
    return ModelConfig(
        d_model=m, n_layers=n, n_heads=h, n_kv_heads=hf.num_key_value_heads, d_head=hf.head_dim,
        d_mlp=hf.intermediate_size, d_vocab=hf.vocab_size, norm="rmsnorm", norm_eps=hf.rms_norm_eps,
        act_fn=_act(hf), gated_mlp=True, positional="rotary", qkv_bias=bool(hf.attention_bias),
        attn_out_bias=bool(hf.attention_bias), mlp_bias=False, embed_scale=m**0.5, **variant,
    )  # fmt: skip


def gemma_config(hf: Any, ck: Checkpoint) -> ModelConfig:
    rope = rope_parameters(hf)
    scaling = rope_scaling(rope, hf)
    return _base(hf, ck, n_ctx=context(hf, scaling), rotary_base=rope_theta(rope, hf), rope_scaling=scaling)


def _gemma2_variant(hf: Any, attn_cap: bool = True, logit_cap: bool = True) -> dict[str, Any]:
    caps = SoftCaps(
        hf.attn_logit_softcapping if attn_cap else None, hf.final_logit_softcapping if logit_cap else None
    )
    return dict(
        attn_scale=float(hf.query_pre_attn_scalar) ** 0.5,
        soft_caps=caps,
        attn_windows=windows(hf, hf.num_hidden_layers),
    )


def gemma2_config(hf: Any, ck: Checkpoint) -> ModelConfig:
    rope = rope_parameters(hf)
    scaling = rope_scaling(rope, hf)
    return _base(
        hf, ck, n_ctx=context(hf, scaling), rotary_base=rope_theta(rope, hf), rope_scaling=scaling,
        norms=NormLayout(post=True), **_gemma2_variant(hf),
    )  # fmt: skip


def gemma3_config(hf: Any, ck: Checkpoint) -> ModelConfig:
    # Gemma3ForConditionalGeneration applies no final-logit soft-cap (Gemma3ForCausalLM does, when set).
    multimodal, top, hf = hasattr(hf, "text_config"), hf, _text(hf)
    if getattr(hf, "use_bidirectional_attention", False):
        raise LoadError("Gemma 3 with use_bidirectional_attention (an encoder) is not a causal LM")
    rope = rope_parameters(hf)
    full, local = rope.get("full_attention", rope), rope.get("sliding_attention", {})
    if rope_scaling(local, hf) is not None:
        raise LoadError("Gemma 3: RoPE scaling on the local (sliding) layers is not supported")
    scaling = rope_scaling(full, hf)
    return _base(
        hf, ck, n_ctx=context(hf, scaling), rotary_base=rope_theta(full, hf, 1e6), rope_scaling=scaling,
        rotary_base_local=rope_theta(local, hf, 10000.0), norms=NormLayout(post=True, qk_norm="head"),
        **_gemma2_variant(hf, attn_cap=False, logit_cap=not multimodal),
        tie_embeddings=tied(top, ck, "embed_tokens.weight"),  # the multimodal model ties by its own flag  # Gemma 3's attention ignores attn_logit_softcapping (QK-norm instead)
    )  # fmt: skip


def _norm(ck: Checkpoint, key: str, n: int) -> Tensor:
    return 1.0 + ck.take(key, (n,))  # Gemma's RMSNorm multiplies by (1 + w)


def _weights(cfg: ModelConfig, ck: Checkpoint, p: str, norms: dict[str, str]) -> Iterator[tuple[str, Tensor]]:
    m, d, v = cfg.d_model, cfg.d_head, cfg.d_vocab
    yield "embed.W_E", ck.take(p + "embed_tokens.weight", (v, m))
    for i in range(cfg.n_layers):
        src, dst = f"{p}layers.{i}.", f"blocks.{i}."
        yield from separate_qkvo(cfg, ck, src, dst)
        yield from gated_mlp(cfg, ck, src, dst)
        for hf_name, ours in norms.items():
            yield dst + ours, _norm(ck, src + hf_name, m)
        if cfg.norms.qk_norm == "head":
            yield dst + "attn.q_norm.w", _norm(ck, src + "self_attn.q_norm.weight", d)
            yield dst + "attn.k_norm.w", _norm(ck, src + "self_attn.k_norm.weight", d)
    yield "ln_final.w", _norm(ck, p + "norm.weight", m)


_GEMMA1_NORMS = {"input_layernorm.weight": "ln1.w", "post_attention_layernorm.weight": "ln2.w"}
# Gemma 2/3's post_attention_layernorm acts on attention's output (ln1_post), not before the MLP.
_SANDWICH = {
    "input_layernorm.weight": "ln1.w",
    "post_attention_layernorm.weight": "ln1_post.w",
    "pre_feedforward_layernorm.weight": "ln2.w",
    "post_feedforward_layernorm.weight": "ln2_post.w",
}


def _unembed(cfg: ModelConfig, ck: Checkpoint, key: str) -> Iterator[tuple[str, Tensor]]:
    if not cfg.tie_embeddings:
        yield "unembed.W_U", ck.take(key, (cfg.d_vocab, cfg.d_model)).T


def gemma_weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    yield from _weights(cfg, ck, "", _GEMMA1_NORMS)
    yield from _unembed(cfg, ck, "lm_head.weight")


def gemma2_weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    yield from _weights(cfg, ck, "", _SANDWICH)
    yield from _unembed(cfg, ck, "lm_head.weight")


def gemma3_weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    # Gemma3ForCausalLM: "model.layers...". The multimodal model keeps the text tower under
    # "model.language_model." (transformers 5) or "language_model.model." (the Hub's gemma-3-4b and larger).
    p = next(
        (p for p in ("language_model.", "language_model.model.") if ck.has(p + "embed_tokens.weight")), ""
    )
    head = next(
        (k for k in ("language_model.lm_head.weight", "lm_head.weight") if ck.has(k)), "lm_head.weight"
    )
    yield from _weights(cfg, ck, p, _SANDWICH)
    if not cfg.tie_embeddings:
        yield from _unembed(cfg, ck, head)
    elif ck.has(head):
        ck.used.add(head)
    # The vision tower and projector of Gemma3ForConditionalGeneration are not part of the language model.
    ck.used.update(k for k in ck.state if k.startswith(("vision_tower.", "multi_modal_projector.", "language_model.vision", "model.vision_tower.", "model.multi_modal_projector.")))  # fmt: skip


# Gemma needs its BOS token: without it the first position's residual is far off the training distribution.
GEMMA = Family(("GemmaForCausalLM",), ("gemma",), "model.", gemma_config, gemma_weights, prepend_bos=True)
GEMMA2 = Family(
    ("Gemma2ForCausalLM",), ("gemma2",), "model.", gemma2_config, gemma2_weights, prepend_bos=True
)
GEMMA3 = Family(
    ("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration"), ("gemma3_text", "gemma3"), "model.",
    gemma3_config, gemma3_weights, prepend_bos=True,
)  # fmt: skip
