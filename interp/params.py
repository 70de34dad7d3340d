"""Parameter counts for a `ModelConfig`, grouped by component: where do a transformer's weights live?

The counts follow the parameter layout of interp's HookedTransformer exactly (`embed.W_E`,
`blocks.{l}.attn.W_Q`, ...), so `param_breakdown(model)` can check the formula against the real
model's `parameters()`. `PRESETS` holds configs for well-known checkpoints, built from their public
config numbers so that no download is needed.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from interp.config import ModelConfig, NormLayout, RopeScaling, SoftCaps

if TYPE_CHECKING:  # heavy imports stay out of module import time (the CLI imports this lazily anyway)
    import pandas as pd
    import torch

GROUPS = ("embedding", "attention", "mlp", "norms", "unembedding")
# Groups that map tokens to and from the residual stream; "non-embedding" parameters (as in scaling-law
# papers) are everything else.
EMBEDDING_GROUPS = ("embedding", "unembedding")


def _gpt2(n_layers: int, d_model: int, n_heads: int) -> ModelConfig:
    # All GPT-2 sizes share d_head 64, a 4x MLP, the 50257-token vocab and 1024 learned positions.
    return ModelConfig(
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        d_mlp=4 * d_model,
        d_vocab=50257,
        n_ctx=1024,
        norm="layernorm",
        norm_eps=1e-5,
        act_fn="gelu_new",
        positional="learned",
        qkv_bias=True,
        attn_out_bias=True,
        mlp_bias=True,
        tie_embeddings=True,
        unembed_bias=False,
    )


def _llama3(n_layers: int, d_model: int, n_heads: int, d_mlp: int) -> ModelConfig:
    return ModelConfig(
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=8,
        d_head=128,
        d_mlp=d_mlp,
        d_vocab=128256,
        n_ctx=8192,
        norm="rmsnorm",
        norm_eps=1e-5,
        act_fn="silu",
        gated_mlp=True,
        positional="rotary",
        rotary_base=500000.0,
        qkv_bias=False,
        attn_out_bias=False,
        mlp_bias=False,
        tie_embeddings=False,
        unembed_bias=False,
    )


def _pythia(n_layers: int, d_model: int, n_heads: int, d_vocab: int) -> ModelConfig:
    # GPT-NeoX: parallel attention + MLP, a quarter of each head rotated, 4x MLP, untied, 2048 positions.
    d_head = d_model // n_heads
    return ModelConfig(
        d_model=d_model, n_layers=n_layers, n_heads=n_heads, d_head=d_head, d_mlp=4 * d_model,
        d_vocab=d_vocab, n_ctx=2048, norm="layernorm", act_fn="gelu", positional="rotary",
        rotary_dim=d_head // 4, tie_embeddings=False, parallel_attn_mlp=True,
    )  # fmt: skip


def _gemma2(n_layers: int, d_model: int, n_heads: int, n_kv_heads: int, d_mlp: int) -> ModelConfig:
    # Sandwich norms, soft-caps 50 (attention) / 30 (logits), 4096-token windows on even layers, tied.
    return ModelConfig(
        d_model=d_model, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads, d_head=256, d_mlp=d_mlp,
        d_vocab=256000, n_ctx=8192, norm="rmsnorm", norm_eps=1e-6, act_fn="gelu_pytorch_tanh", gated_mlp=True,
        positional="rotary", qkv_bias=False, attn_out_bias=False, mlp_bias=False, attn_scale=256**0.5,
        embed_scale=d_model**0.5, attn_windows=tuple(4096 if i % 2 == 0 else None for i in range(n_layers)),
        norms=NormLayout(post=True), soft_caps=SoftCaps(50.0, 30.0),
    )  # fmt: skip


_GEMMA3_4B = ModelConfig(
    # Text tower of gemma-3-4b: QK-norm, 5 local (1024-token window, RoPE base 1e4) : 1 global layer
    # (RoPE base 1e6, linear scaling x8), no soft-caps.
    d_model=2560, n_layers=34, n_heads=8, n_kv_heads=4, d_head=256, d_mlp=10240, d_vocab=262208,
    n_ctx=131072, norm="rmsnorm", norm_eps=1e-6, act_fn="gelu_pytorch_tanh", gated_mlp=True,
    positional="rotary", rotary_base=1e6, rope_scaling=RopeScaling("linear", factor=8.0),
    rotary_base_local=10000.0, qkv_bias=False, attn_out_bias=False, mlp_bias=False, attn_scale=256**0.5,
    embed_scale=2560**0.5, attn_windows=tuple(None if (i + 1) % 6 == 0 else 1024 for i in range(34)),
    norms=NormLayout(post=True, qk_norm="head"),
)  # fmt: skip

_LLAMA_31_8B = dataclasses.replace(
    _llama3(n_layers=32, d_model=4096, n_heads=32, d_mlp=14336),
    n_ctx=131072,
    rope_scaling=RopeScaling("llama3", factor=8.0, original_max_position_embeddings=8192),
)

_QWEN3_8B = ModelConfig(
    d_model=4096, n_layers=36, n_heads=32, n_kv_heads=8, d_head=128, d_mlp=12288, d_vocab=151936,
    n_ctx=40960, norm="rmsnorm", norm_eps=1e-6, act_fn="silu", gated_mlp=True, positional="rotary",
    rotary_base=1e6, qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=False,
    norms=NormLayout(qk_norm="head"),
)  # fmt: skip

_OLMO2_7B = ModelConfig(
    # OLMo-2-1124-7B: norms after attention and the MLP only, QK-norm over the whole projection.
    d_model=4096, n_layers=32, n_heads=32, d_head=128, d_mlp=11008, d_vocab=100352, n_ctx=4096,
    norm="rmsnorm", norm_eps=1e-6, act_fn="silu", gated_mlp=True, positional="rotary", rotary_base=500000.0,
    qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=False,
    norms=NormLayout(pre=False, post=True, qk_norm="full"),
)  # fmt: skip


PRESETS: dict[str, ModelConfig] = {
    "gpt2": _gpt2(n_layers=12, d_model=768, n_heads=12),
    "gpt2-medium": _gpt2(n_layers=24, d_model=1024, n_heads=16),
    "gpt2-large": _gpt2(n_layers=36, d_model=1280, n_heads=20),
    "gpt2-xl": _gpt2(n_layers=48, d_model=1600, n_heads=25),
    "llama-3-8b": _llama3(n_layers=32, d_model=4096, n_heads=32, d_mlp=14336),
    "llama-3-70b": _llama3(n_layers=80, d_model=8192, n_heads=64, d_mlp=28672),
    "qwen2-7b": ModelConfig(
        d_model=3584,
        n_layers=28,
        n_heads=28,
        n_kv_heads=4,
        d_head=128,
        d_mlp=18944,
        d_vocab=152064,
        n_ctx=32768,
        norm="rmsnorm",
        norm_eps=1e-6,
        act_fn="silu",
        gated_mlp=True,
        positional="rotary",
        rotary_base=1e6,
        qkv_bias=True,  # Qwen2 keeps Q/K/V biases but drops the output and MLP biases
        attn_out_bias=False,
        mlp_bias=False,
        tie_embeddings=False,
        unembed_bias=False,
    ),
    "pythia-160m": _pythia(n_layers=12, d_model=768, n_heads=12, d_vocab=50304),
    "pythia-1.4b": _pythia(n_layers=24, d_model=2048, n_heads=16, d_vocab=50304),
    "pythia-6.9b": _pythia(n_layers=32, d_model=4096, n_heads=32, d_vocab=50432),
    "gemma-2-2b": _gemma2(n_layers=26, d_model=2304, n_heads=8, n_kv_heads=4, d_mlp=9216),
    "gemma-2-9b": _gemma2(n_layers=42, d_model=3584, n_heads=16, n_kv_heads=8, d_mlp=14336),
    "gemma-3-4b": _GEMMA3_4B,
    "llama-3.1-8b": _LLAMA_31_8B,
    "qwen3-8b": _QWEN3_8B,
    "olmo-2-7b": _OLMO2_7B,
}


def get_preset(name: str) -> ModelConfig:
    """The preset config called `name`; ValueError naming the available presets if there is none."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}") from None


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per group (see GROUPS). A tied unembedding counts 0: it is the embedding matrix."""
    d, kv, e, norms = cfg.d_model, cfg.kv_heads, cfg.embed_width, cfg.norms
    n_norm_params = 2 if cfg.norm == "layernorm" else 1  # LayerNorm has w and b; RMSNorm only w
    projection = 0 if cfg.d_embed is None else e * d  # OPT-350m's project_in / project_out

    embedding = cfg.d_vocab * e + (cfg.n_ctx * d if cfg.positional == "learned" else 0) + projection

    attn = (cfg.n_heads + 2 * kv) * d * cfg.d_head + cfg.n_heads * cfg.d_head * d  # W_Q, W_K, W_V; W_O
    if cfg.qkv_bias:
        attn += (cfg.n_heads + 2 * kv) * cfg.d_head
    if cfg.attn_out_bias:
        attn += d
    if norms.qk_norm != "none":  # QK-norm weights sit in the attention layer, as in Hugging Face
        attn += 2 * cfg.d_head if norms.qk_norm == "head" else (cfg.n_heads + kv) * cfg.d_head

    n_in = 2 if cfg.gated_mlp else 1  # W_in, plus W_gate for gated MLPs
    mlp = n_in * d * cfg.d_mlp + cfg.d_mlp * d
    if cfg.mlp_bias:
        mlp += n_in * cfg.d_mlp + d

    unembedding = (0 if cfg.tie_embeddings else e * cfg.d_vocab) + projection
    if cfg.unembed_bias:
        unembedding += cfg.d_vocab  # b_U exists even when W_U is tied

    return {
        "embedding": embedding,
        "attention": cfg.n_layers * attn,
        "mlp": cfg.n_layers * mlp,
        "norms": (cfg.n_layers * _block_norms(cfg) + norms.final) * n_norm_params * d,
        "unembedding": unembedding,
    }


def _block_norms(cfg: ModelConfig) -> int:
    """d_model-wide norms per block: ln1, ln2 (GPT-J shares one; OLMo 2 has none), ln1_post, ln2_post."""
    pre = 0 if not cfg.norms.pre else 1 if cfg.norms.shared_ln else 2
    return pre + (2 if cfg.norms.post else 0)


def _config_of(model_or_config: ModelConfig | torch.nn.Module | str) -> tuple[ModelConfig, int | None]:
    """The config to count, and the model's actual parameter total when we were given a model."""
    if isinstance(model_or_config, ModelConfig):
        return model_or_config, None
    if isinstance(model_or_config, str):
        return get_preset(model_or_config), None

    import torch

    if isinstance(model_or_config, torch.nn.Module):
        cfg = getattr(model_or_config, "config", getattr(model_or_config, "cfg", None))  # interp: .config
        if not isinstance(cfg, ModelConfig):
            raise TypeError(
                f"{type(model_or_config).__name__} has no interp ModelConfig at `.cfg`; "
                "pass a ModelConfig, a preset name, or an interp HookedTransformer"
            )
        # parameters() yields a shared (tied) tensor once, matching how param_counts treats tying.
        return cfg, sum(p.numel() for p in model_or_config.parameters())
    raise TypeError(
        f"expected a ModelConfig, torch.nn.Module or preset name, got {type(model_or_config).__name__}"
    )


def param_breakdown(model_or_config: ModelConfig | torch.nn.Module | str) -> pd.DataFrame:
    """A table of parameters per group: columns component, params, share (of the total).

    One row per group in GROUPS, then a "total" row with share 1.0. Given a model, also checks that
    the formula's total equals the model's real parameter count, so the two cannot silently drift.
    """
    import pandas as pd

    cfg, actual = _config_of(model_or_config)
    counts = param_counts(cfg)
    total = sum(counts.values())
    if actual is not None and actual != total:
        raise ValueError(
            f"param_counts(model.cfg) gives {total:,} parameters but the model has {actual:,} "
            f"(difference {actual - total:+,}); interp.params no longer matches the model's layout"
        )
    rows = [(name, n, n / total) for name, n in counts.items()] + [("total", total, 1.0)]
    return pd.DataFrame(rows, columns=["component", "params", "share"])


def mlp_share(df: pd.DataFrame, *, non_embedding: bool = False) -> float:
    """The MLPs' fraction of all parameters in a `param_breakdown` table.

    With `non_embedding=True`, the fraction of the parameters outside the embedding and unembedding,
    the denominator of the "FFNs hold about 2/3 of the parameters" claim: for small models like gpt2
    the vocabulary matrices are a large part of the total (MLP ~45% of all, ~67% of non-embedding).
    """
    params = df.set_index("component")["params"]
    denominator = params["total"]
    if non_embedding:
        denominator -= sum(params[g] for g in EMBEDDING_GROUPS)
    return float(params["mlp"] / denominator)
