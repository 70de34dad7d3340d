"""`TLConfigView`: the model's config under TransformerLens 3's names, read-only and bound to the model.

`ModelConfig` is frozen and knows nothing about devices or where a model came from; TL notebooks read
`model.cfg.device`, `model.cfg.normalization_type`, `model.cfg.model_name`... This view answers those from
the model (device and dtype of W_E, name and architecture stored at load) and falls through to the
`ModelConfig` for interp's own field names (`model.cfg.d_model`, `model.cfg.kv_heads`, ...).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from interp.config import ModelConfig

if TYPE_CHECKING:
    from interp.transformer import HookedTransformer


def as_model_config(cfg: Any) -> ModelConfig:
    """A `ModelConfig` from a ModelConfig or a model's `cfg` view (so `HookedTransformer(model.cfg)` works)."""
    if isinstance(cfg, TLConfigView):
        return cfg.config
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"expected an interp ModelConfig (or model.cfg), got {type(cfg).__name__}")
    return cfg


class TLConfigView:
    """Read-only: setting any attribute raises, since the model's structure is fixed at construction."""

    __slots__ = ("_model",)

    def __init__(self, model: HookedTransformer) -> None:
        object.__setattr__(self, "_model", model)

    @property
    def config(self) -> ModelConfig:
        return self._model.config

    # ---- what the model knows, not the config --------------------------------------------------------------
    @property
    def device(self) -> str:
        """A string, as TL's config holds it ("cpu", "cuda:0"); `model.device` is the torch.device."""
        return str(self._model.W_E.device)

    @property
    def dtype(self) -> torch.dtype:
        return self._model.W_E.dtype

    @property
    def model_name(self) -> str:
        return self._model.model_name

    @property
    def original_architecture(self) -> str:
        return self._model.original_architecture

    @property
    def default_prepend_bos(self) -> bool:
        return self._model.default_prepend_bos

    @property
    def tokenizer_prepends_bos(self) -> bool:
        return False  # interp's tokenizer never adds BOS itself; to_tokens does it by policy

    @property
    def use_attn_result(self) -> bool:
        return self._model.tl_switches["use_attn_result"]

    @property
    def use_split_qkv_input(self) -> bool:
        return self._model.tl_switches["use_split_qkv_input"]

    @property
    def use_attn_in(self) -> bool:
        return self._model.tl_switches["use_attn_in"]

    @property
    def use_hook_mlp_in(self) -> bool:
        return self._model.tl_switches["use_hook_mlp_in"]

    # ---- TL names for interp's fields ----------------------------------------------------------------------
    @property
    def normalization_type(self) -> str:
        base = {"layernorm": "LN", "rmsnorm": "RMS"}[self.config.norm]
        # TL 3 replaces folded norms by their weightless "Pre" variants.
        return base + "Pre" if self._model.processing.get("fold_ln") else base

    @property
    def positional_embedding_type(self) -> str:
        return {"learned": "standard", "rotary": "rotary"}[self.config.positional]

    @property
    def n_key_value_heads(self) -> int | None:
        return self.config.n_kv_heads

    @property
    def eps(self) -> float:
        return self.config.norm_eps

    @property
    def d_vocab_out(self) -> int:
        return self.config.d_vocab

    @property
    def rotary_dim(self) -> int | None:
        return self.config.rotary_dims if self.config.positional == "rotary" else None

    @property
    def rotary_base(self) -> float:
        return self.config.rotary_base

    @property
    def parallel_attn_mlp(self) -> bool:
        return self.config.parallel_attn_mlp

    @property
    def attn_only(self) -> bool:
        return False

    @property
    def final_rms(self) -> bool:
        return self.config.norm == "rmsnorm"

    @property
    def attention_dir(self) -> str:
        return "causal"

    @property
    def use_attn_scale(self) -> bool:
        return True

    @property
    def attn_scale(self) -> float:
        return math.sqrt(self.config.d_head)

    @property
    def window_size(self) -> int | None:
        windows = {w for w in self.config.attn_windows if w is not None}
        return max(windows) if windows else None

    @property
    def n_devices(self) -> int:
        return 1

    @property
    def n_params(self) -> int:
        """TL's count: the weight matrices of the blocks (no embeddings, biases or norms)."""
        return sum(p.numel() for n, p in self._model.blocks.named_parameters() if p.ndim > 1)

    def tl_dict(self) -> dict[str, Any]:
        """interp's fields, plus the TL names above (`to_dict` stays ModelConfig's, for saving)."""
        d = self.config.to_dict()
        for name in _TL_NAMES:
            d[name] = getattr(self, name)
        return d

    # ---- plumbing ------------------------------------------------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        return (TLConfigView, (self._model,))  # copy.deepcopy(model) rebinds the view to the copy

    def __getattr__(self, name: str) -> Any:
        # Only reached for names the view does not define: interp's own ModelConfig fields and methods.
        if name.startswith("__") or name == "_model":
            raise AttributeError(name)
        try:
            return getattr(self._model.config, name)
        except AttributeError:
            raise AttributeError(
                f"model.cfg has no {name!r}; it serves ModelConfig's fields and TransformerLens's "
                f"names {', '.join(_TL_NAMES)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"model.cfg is read-only (tried to set {name!r}); the structure is fixed when the model is built"
            " — use model.set_use_attn_result(...) and friends for TL's switches"
        )

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TLConfigView):
            return self.config == other.config
        if isinstance(other, ModelConfig):
            return self.config == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.config)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self.config.to_dict()) | set(_TL_NAMES))

    def __repr__(self) -> str:
        return f"TLConfigView({self.config!r}, device={self.device}, dtype={self.dtype})"


_TL_NAMES = (
    "device", "dtype", "model_name", "original_architecture", "default_prepend_bos", "tokenizer_prepends_bos",
    "normalization_type", "positional_embedding_type", "n_key_value_heads", "eps", "d_vocab_out",
    "rotary_dim", "rotary_base", "parallel_attn_mlp", "attn_only", "final_rms", "attention_dir",
    "use_attn_scale", "attn_scale", "window_size", "n_devices", "n_params", "use_attn_result",
    "use_split_qkv_input", "use_attn_in", "use_hook_mlp_in",
)  # fmt: skip
