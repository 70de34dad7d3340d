"""Config readings that several families share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig, RopeScaling
from interp.errors import LoadError
from interp.loading.checkpoint import Checkpoint


def tied(hf: Any, ck: Checkpoint, embed_key: str) -> bool:
    tied = bool(getattr(hf, "tie_word_embeddings", True))
    if tied and ck.has("lm_head.weight"):
        ck.used.add("lm_head.weight")  # in-memory tied models list the shared matrix twice
    return tied


def windows(hf: Any, n_layers: int) -> tuple[int | None, ...]:
    window = getattr(hf, "sliding_window", None)
    if not window or (hasattr(hf, "use_sliding_window") and not hf.use_sliding_window):
        return ()
    types = getattr(hf, "layer_types", None) or ["sliding_attention"] * n_layers
    return tuple(window if t == "sliding_attention" else None for t in types)


def rope_parameters(hf: Any) -> dict[str, Any]:
    """HF's RoPE settings as one dict (transformers 5 `rope_parameters`, older `rope_scaling`)."""
    return dict(getattr(hf, "rope_parameters", None) or getattr(hf, "rope_scaling", None) or {})


def rope_theta(rope: dict[str, Any], hf: Any, default: float = 10000.0) -> float:
    return float(rope.get("rope_theta", getattr(hf, "rope_theta", default)))


SCALINGS = ("linear", "dynamic", "yarn", "llama3", "longrope")


def rope_scaling(rope: dict[str, Any], hf: Any) -> RopeScaling | None:
    """interp's RopeScaling for HF's rope parameters; None for the default RoPE."""
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind == "default":
        return None
    if kind not in SCALINGS:
        raise LoadError(f"RoPE scaling {kind!r} is not supported; supported: default, {', '.join(SCALINGS)}")
    max_pos = hf.max_position_embeddings
    original = rope.get("original_max_position_embeddings") or getattr(
        hf, "original_max_position_embeddings", None
    )
    if kind == "dynamic":  # HF's dynamic NTK grows the base past max_position_embeddings itself
        original = max_pos
    original = original or max_pos
    factor = rope.get("factor")
    if factor is None:
        factor = max_pos / original if kind in ("yarn", "longrope") else 1.0
    optional = {
        k: rope[k] for k in ("mscale", "mscale_all_dim", "attention_factor") if rope.get(k) is not None
    }
    optional |= {k: float(rope[k]) for k in ("low_freq_factor", "high_freq_factor") if k in rope}
    optional |= {k: float(rope[k]) for k in ("beta_fast", "beta_slow") if rope.get(k)}
    return RopeScaling(
        rope_type=kind, factor=float(factor), original_max_position_embeddings=int(original),
        truncate=bool(rope.get("truncate", True)), short_factor=tuple(rope.get("short_factor") or ()),
        long_factor=tuple(rope.get("long_factor") or ()), **optional,
    )  # fmt: skip


def context(hf: Any, scaling: RopeScaling | None) -> int:
    """n_ctx: HF's max_position_embeddings, stretched by dynamic RoPE, which exists to run past it."""
    n = hf.max_position_embeddings
    return int(n * scaling.factor) if scaling is not None and scaling.rope_type == "dynamic" else n


def hf_act(name: str, allowed: dict[str, str]) -> str:
    if name not in allowed:
        raise LoadError(f"unsupported activation {name!r}; supported: {', '.join(sorted(allowed))}")
    return allowed[name]


def linear_heads(ck: Checkpoint, key: str, heads: int, d: int, m: int) -> Tensor:
    """A Linear [heads * d, d_model] projection as interp's per-head [head, d_model, d_head]."""
    return ck.take(key, (heads * d, m)).reshape(heads, d, m).transpose(1, 2)


def linear_out(ck: Checkpoint, key: str, heads: int, d: int, m: int) -> Tensor:
    """A Linear [d_model, heads * d] output projection as W_O [head, d_head, d_model]."""
    return ck.take(key, (m, heads * d)).T.reshape(heads, d, m)


def separate_qkvo(cfg: ModelConfig, ck: Checkpoint, src: str, dst: str) -> Iterator[tuple[str, Tensor]]:
    """Attention weights from separate `self_attn.{q,k,v,o}_proj` Linears (Llama's layout), with their biases
    where the config has them."""
    m, d = cfg.d_model, cfg.d_head
    for name, heads in (("q", cfg.n_heads), ("k", cfg.kv_heads), ("v", cfg.kv_heads)):
        yield (
            dst + f"attn.W_{name.upper()}",
            linear_heads(ck, src + f"self_attn.{name}_proj.weight", heads, d, m),
        )
        if cfg.qkv_bias:
            bias = ck.take(src + f"self_attn.{name}_proj.bias", (heads * d,))
            yield dst + f"attn.b_{name.upper()}", bias.reshape(heads, d)
    yield dst + "attn.W_O", linear_out(ck, src + "self_attn.o_proj.weight", cfg.n_heads, d, m)
    if cfg.attn_out_bias:
        yield dst + "attn.b_O", ck.take(src + "self_attn.o_proj.bias", (m,))


def gated_mlp(cfg: ModelConfig, ck: Checkpoint, src: str, dst: str) -> Iterator[tuple[str, Tensor]]:
    """A gated MLP from `mlp.{gate,up,down}_proj` Linears (no biases)."""
    m, mlp = cfg.d_model, cfg.d_mlp
    yield dst + "mlp.W_gate", ck.take(src + "mlp.gate_proj.weight", (mlp, m)).T
    yield dst + "mlp.W_in", ck.take(src + "mlp.up_proj.weight", (mlp, m)).T
    yield dst + "mlp.W_out", ck.take(src + "mlp.down_proj.weight", (m, mlp)).T
