"""`ModelConfig`: one frozen description of a decoder-only transformer, GPT-2 and LLaMA families alike.

Axis vocabulary used throughout interp (as in penzai's model_parts):
    batch, pos (query_pos / key_pos), head, d_head, d_model, d_mlp, d_vocab.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Norm = Literal["layernorm", "rmsnorm"]
Act = Literal["gelu_new", "gelu", "silu", "relu"]
Positional = Literal["learned", "rotary"]


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

    def __post_init__(self) -> None:
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
        # JSON round-trips give lists; keep the field hashable.
        object.__setattr__(self, "attn_windows", tuple(self.attn_windows))

    @property
    def kv_heads(self) -> int:
        return self.n_heads if self.n_kv_heads is None else self.n_kv_heads

    def window(self, layer: int) -> int | None:
        return self.attn_windows[layer] if self.attn_windows else None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["attn_windows"] = list(self.attn_windows)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)
