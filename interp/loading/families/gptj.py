"""GPT-J (`GPTJForCausalLM`): parallel attention + MLP reading one shared norm, partial rotary in the
interleaved (rotate-every-two) convention, no attention biases, a biased lm_head."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig, NormLayout
from interp.loading.checkpoint import Checkpoint
from interp.loading.families.base import Family
from interp.loading.families.common import hf_act, linear_heads, linear_out, tied

_ACT = {"gelu_new": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}


def config(hf: Any, ck: Checkpoint) -> ModelConfig:
    m, h = hf.n_embd, hf.n_head
    d = m // h
    rotary = hf.rotary_dim or d
    return ModelConfig(
        d_model=m, n_layers=hf.n_layer, n_heads=h, d_head=d, d_mlp=hf.n_inner or 4 * m, d_vocab=hf.vocab_size,
        n_ctx=hf.n_positions, norm="layernorm", norm_eps=hf.layer_norm_epsilon,
        act_fn=hf_act(hf.activation_function, _ACT), positional="rotary", rotary_base=10000.0,
        rotary_dim=None if rotary == d else rotary, rotary_adjacent_pairs=True, qkv_bias=False,
        attn_out_bias=False, mlp_bias=True, tie_embeddings=tied(hf, ck, "wte.weight"), unembed_bias=True,
        parallel_attn_mlp=True, norms=NormLayout(shared_ln=True),
    )  # fmt: skip


def weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    m, h, d, mlp, v = cfg.d_model, cfg.n_heads, cfg.d_head, cfg.d_mlp, cfg.d_vocab
    yield "embed.W_E", ck.take("wte.weight", (v, m))
    for i in range(cfg.n_layers):
        src, dst = f"h.{i}.", f"blocks.{i}."
        for name in "qkv":
            yield dst + f"attn.W_{name.upper()}", linear_heads(ck, src + f"attn.{name}_proj.weight", h, d, m)
        yield dst + "attn.W_O", linear_out(ck, src + "attn.out_proj.weight", h, d, m)
        yield dst + "mlp.W_in", ck.take(src + "mlp.fc_in.weight", (mlp, m)).T
        yield dst + "mlp.b_in", ck.take(src + "mlp.fc_in.bias", (mlp,))
        yield dst + "mlp.W_out", ck.take(src + "mlp.fc_out.weight", (m, mlp)).T
        yield dst + "mlp.b_out", ck.take(src + "mlp.fc_out.bias", (m,))
        yield dst + "ln1.w", ck.take(src + "ln_1.weight", (m,))
        yield dst + "ln1.b", ck.take(src + "ln_1.bias", (m,))
    yield "ln_final.w", ck.take("ln_f.weight", (m,))
    yield "ln_final.b", ck.take("ln_f.bias", (m,))
    if not cfg.tie_embeddings:
        yield "unembed.W_U", ck.take("lm_head.weight", (v, m)).T
    yield "unembed.b_U", ck.take("lm_head.bias", (v,))


GPTJ = Family(("GPTJForCausalLM",), ("gptj",), "transformer.", config, weights)
