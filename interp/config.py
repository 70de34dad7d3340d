"""`ModelConfig`: one frozen description of a decoder-only transformer, every supported family alike.

Family variants live in three small frozen sub-configs: `RopeScaling` (long-context RoPE), `NormLayout`
(where norms sit) and `SoftCaps` (Gemma 2's tanh caps). Flat fields reuse TransformerLens's names
(`rotary_dim`, `parallel_attn_mlp`, `attn_scale`, ...) so the TL-compatibility layer needs no aliases.

Axis vocabulary used throughout interp (as in penzai's model_parts):
    batch, pos (query_pos / key_pos), head, d_head, d_model, d_mlp, d_vocab.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Norm = Literal["layernorm", "rmsnorm"]
Act = Literal["gelu_new", "gelu_pytorch_tanh", "gelu", "silu", "relu"]
Positional = Literal["learned", "rotary"]
RopeType = Literal["linear", "dynamic", "yarn", "llama3", "longrope"]
QKNorm = Literal["none", "head", "full"]


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling beyond the default, as Hugging Face's `rope_scaling` / `rope_parameters`.

    Stateless: `dynamic` and `longrope` depend only on the current sequence length (max position + 1).
    """

    rope_type: RopeType
    factor: float = 1.0  # linear, dynamic, yarn, llama3: how far the context is stretched
    original_max_position_embeddings: int | None = None  # the pretraining length the scaling starts from
    low_freq_factor: float = 1.0  # llama3: wavelengths above original / low_freq_factor are divided by factor
    high_freq_factor: float = 4.0  # llama3: wavelengths below original / high_freq_factor are kept
    beta_fast: float = 32.0  # yarn: rotations bounding the interpolation ramp
    beta_slow: float = 1.0
    truncate: bool = True  # yarn: round the ramp bounds to whole dimensions
    mscale: float | None = None  # yarn (DeepSeek form): attention factor numerator scale
    mscale_all_dim: float | None = None
    attention_factor: float | None = (
        None  # yarn / longrope: multiplies cos and sin; None = derived from factor
    )
    short_factor: tuple[float, ...] = ()  # longrope: per-frequency divisors up to the original length
    long_factor: tuple[float, ...] = ()  # longrope: ... and beyond it

    def __post_init__(self) -> None:
        if self.rope_type not in RopeType.__args__:
            raise ValueError(f"RopeScaling.rope_type={self.rope_type!r}; allowed: {RopeType.__args__}")
        if self.factor <= 0:
            raise ValueError(f"RopeScaling.factor must be positive, got {self.factor}")
        needs_original = self.rope_type in ("dynamic", "yarn", "llama3", "longrope")
        if needs_original and not self.original_max_position_embeddings:
            raise ValueError(f"RoPE scaling {self.rope_type!r} needs original_max_position_embeddings")
        if self.rope_type == "longrope" and not (self.short_factor and self.long_factor):
            raise ValueError("longrope needs short_factor and long_factor")
        object.__setattr__(self, "short_factor", tuple(self.short_factor))
        object.__setattr__(self, "long_factor", tuple(self.long_factor))


@dataclass(frozen=True)
class NormLayout:
    """Where the norms sit in a block. The default is GPT-2/LLaMA's pre-norm ln1 -> attn, ln2 -> MLP."""

    pre: bool = True  # ln1 / ln2 before attention / MLP (False: OLMo 2, whose norms all come after)
    post: bool = False  # ln1_post / ln2_post on attention / MLP outputs, before the add (Gemma 2/3, OLMo 2)
    qk_norm: QKNorm = (
        "none"  # RMSNorm on q and k: per head ("head": Qwen3, Gemma 3) or whole projection (OLMo 2)
    )
    shared_ln: bool = False  # one norm feeds attention and MLP (GPT-J's parallel block): no ln2
    residual: bool = False  # post-LN (OPT-350m): ln1 / ln2 renormalise the residual after each add
    final: bool = True  # ln_final before the unembedding (OPT-350m's post-LN has none)

    def __post_init__(self) -> None:
        if self.qk_norm not in QKNorm.__args__:
            raise ValueError(f"NormLayout.qk_norm={self.qk_norm!r}; allowed: {QKNorm.__args__}")
        if self.residual and (self.post or not self.pre or self.shared_ln):
            raise ValueError("a post-LN (residual) layout has only ln1 and ln2, after each add")


@dataclass(frozen=True)
class SoftCaps:
    """Gemma 2's tanh soft-caps, cap * tanh(x / cap); None = no cap. Named as in TransformerLens."""

    attn_scores_soft_cap: float | None = None  # on attention scores, after scaling, before the mask
    output_logits_soft_cap: float | None = None  # on the final logits

    def __post_init__(self) -> None:
        for name in ("attn_scores_soft_cap", "output_logits_soft_cap"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"SoftCaps.{name} must be positive or None, got {v}")


_SUB_CONFIGS = {"rope_scaling": RopeScaling, "norms": NormLayout, "soft_caps": SoftCaps}


@dataclass(frozen=True)
class ModelConfig:
    d_model: int  # width of the residual stream
    n_layers: int  # number of transformer blocks
    n_heads: int  # query heads per attention layer
    d_head: int  # width of one head's query/key/value
    d_mlp: int  # hidden width of each MLP (neurons per layer)
    d_vocab: int  # vocabulary size: rows of W_E, columns of W_U
    n_ctx: int  # longest sequence the model accepts (learned positions or RoPE's trained length)
    n_kv_heads: int | None = (
        None  # key/value heads for grouped-query attention; None = n_heads, 1 = multi-query
    )
    norm: Norm = "layernorm"  # LayerNorm (GPT-2) or RMSNorm (LLaMA family)
    norm_eps: float = 1e-5  # epsilon inside every norm
    act_fn: Act = "gelu_new"  # MLP nonlinearity; "gelu_new" is GPT-2's tanh approximation
    gated_mlp: bool = False  # SwiGLU-style MLP: act(x W_gate) * (x W_in), then W_out
    positional: Positional = "learned"  # learned absolute positions (GPT-2) or rotary embeddings (LLaMA)
    rotary_base: float = 10000.0  # RoPE theta; only read when positional == "rotary"
    qkv_bias: bool = True  # biases on the Q, K, V projections (GPT-2, Qwen2: yes; LLaMA: no)
    attn_out_bias: bool = True  # bias b_O on the attention output projection
    mlp_bias: bool = True  # biases b_in (and b_gate) and b_out on the MLP
    tie_embeddings: bool = True  # W_U is W_E transposed (one shared matrix)
    unembed_bias: bool = False  # a bias b_U on the logits
    # Per-layer attention window: None = full causal attention; w = the token and the w - 1 before it
    # (Mistral's sliding_window, Gemma-2's alternating local/global layers). () = every layer full.
    attn_windows: tuple[int | None, ...] = field(default=())
    # ---- family variants (the defaults are GPT-2 / LLaMA) ----
    rotary_dim: int | None = None  # dims of each head that RoPE rotates (NeoX, GPT-J, Phi); None = d_head
    rotary_adjacent_pairs: bool = False  # GPT-J rotates (x0, x1), (x2, x3), ... instead of LLaMA's halves
    rope_scaling: RopeScaling | None = None  # Llama 3.1's "llama3", linear, dynamic, yarn, longrope
    rotary_base_local: float | None = None  # Gemma 3: RoPE base of windowed layers (unscaled); None = same
    parallel_attn_mlp: bool = False  # NeoX / GPT-J: attention and MLP both read resid_pre, no resid_mid
    attn_scale: float | None = None  # scores are divided by this; None = sqrt(d_head) (Gemma 2: sqrt(qpas))
    embed_scale: float = 1.0  # the token embedding is multiplied by this (Gemma: sqrt(d_model))
    d_embed: int | None = None  # OPT-350m: W_E / W_U width, projected to / from d_model; None = d_model
    norms: NormLayout = field(default_factory=NormLayout)
    soft_caps: SoftCaps = field(default_factory=SoftCaps)

    def __post_init__(self) -> None:
        # JSON round-trips give dicts for the sub-configs.
        for name, sub in _SUB_CONFIGS.items():
            v = getattr(self, name)
            if isinstance(v, dict):
                object.__setattr__(self, name, sub(**v))
            elif v is not None and not isinstance(v, sub):
                raise ValueError(f"ModelConfig.{name} must be a {sub.__name__}, got {type(v).__name__}")
        for name in ("d_model", "n_layers", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
        kv = self.kv_heads
        if kv <= 0 or self.n_heads % kv:
            raise ValueError(f"n_kv_heads={kv} must be positive and divide n_heads={self.n_heads}")
        if self.attn_windows and len(self.attn_windows) != self.n_layers:
            raise ValueError(
                f"attn_windows has {len(self.attn_windows)} entries; it needs one per layer "
                f"(n_layers={self.n_layers}) or none at all"
            )
        if any(w is not None and w < 1 for w in self.attn_windows):
            raise ValueError(f"attention windows must be >= 1 or None, got {self.attn_windows}")
        if self.positional == "rotary" and self.d_head % 2:
            raise ValueError(f"rotary embeddings need an even d_head, got {self.d_head}")
        choices = {"norm": Norm, "act_fn": Act, "positional": Positional}
        for name, lit in choices.items():
            if getattr(self, name) not in lit.__args__:
                raise ValueError(f"ModelConfig.{name}={getattr(self, name)!r}; allowed: {lit.__args__}")
        rot = self.rotary_dim
        if rot is not None and not (0 < rot <= self.d_head and rot % 2 == 0):
            raise ValueError(f"rotary_dim must be even and in (0, d_head={self.d_head}], got {rot}")
        if self.norms.shared_ln and not self.parallel_attn_mlp:
            raise ValueError("norms.shared_ln (one norm for attention and MLP) needs parallel_attn_mlp")
        if self.norms.residual and self.parallel_attn_mlp:
            raise ValueError("a post-LN (norms.residual) block cannot also be parallel")
        if self.rope_scaling is not None and self.positional != "rotary":
            raise ValueError("rope_scaling needs positional='rotary'")
        for name in ("attn_scale", "embed_scale", "d_embed", "rotary_base_local"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ValueError(f"ModelConfig.{name} must be positive, got {v}")
        # JSON round-trips give lists; keep the field hashable.
        object.__setattr__(self, "attn_windows", tuple(self.attn_windows))

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    @property
    def rotary_dims(self) -> int:
        return self.d_head if self.rotary_dim is None else self.rotary_dim

    @property
    def embed_width(self) -> int:
        return self.d_model if self.d_embed is None else self.d_embed

    def window(self, layer: int) -> int | None:
        return self.attn_windows[layer] if self.attn_windows else None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["attn_windows"] = list(self.attn_windows)
        if self.rope_scaling is not None:
            d["rope_scaling"] |= {k: list(d["rope_scaling"][k]) for k in ("short_factor", "long_factor")}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {sorted(unknown)}; known: {sorted(known)}")
        # Configs saved before the family variants existed lack the new keys: their defaults apply.
        return cls(**d)
