"""Parameter counts for a `ModelConfig`, grouped by component: where do a transformer's weights live?

The counts follow the parameter layout of interp's HookedTransformer exactly (`embed.W_E`,
`blocks.{l}.attn.W_Q`, ...), so `param_breakdown(model)` can check the formula against the real
model's `parameters()`. `PRESETS` holds configs for well-known checkpoints, built from their public
config numbers so that no download is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interp.config import ModelConfig

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
}


def get_preset(name: str) -> ModelConfig:
    """The preset config called `name`; ValueError naming the available presets if there is none."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}") from None


def param_counts(cfg: ModelConfig) -> dict[str, int]:
    """Parameters per group (see GROUPS). A tied unembedding counts 0: it is the embedding matrix."""
    d, kv = cfg.d_model, cfg.kv_heads
    n_norm_params = 2 if cfg.norm == "layernorm" else 1  # LayerNorm has w and b; RMSNorm only w

    embedding = cfg.d_vocab * d + (cfg.n_ctx * d if cfg.positional == "learned" else 0)

    attn = (cfg.n_heads + 2 * kv) * d * cfg.d_head + cfg.n_heads * cfg.d_head * d  # W_Q, W_K, W_V; W_O
    if cfg.qkv_bias:
        attn += (cfg.n_heads + 2 * kv) * cfg.d_head
    if cfg.attn_out_bias:
        attn += d

    n_in = 2 if cfg.gated_mlp else 1  # W_in, plus W_gate for gated MLPs
    mlp = n_in * d * cfg.d_mlp + cfg.d_mlp * d
    if cfg.mlp_bias:
        mlp += n_in * cfg.d_mlp + d

    unembedding = 0 if cfg.tie_embeddings else d * cfg.d_vocab
    if cfg.unembed_bias:
        unembedding += cfg.d_vocab  # b_U exists even when W_U is tied

    return {
        "embedding": embedding,
        "attention": cfg.n_layers * attn,
        "mlp": cfg.n_layers * mlp,
        "norms": (2 * cfg.n_layers + 1) * n_norm_params * d,  # ln1, ln2 per block, plus ln_final
        "unembedding": unembedding,
    }


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
