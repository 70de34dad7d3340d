"""`TLModelMixin`: what TransformerLens notebooks call on a model, beside interp's own API.

Mixed into `HookedTransformer` with `TLTokensMixin`, `TLWeightsMixin` and `TLProcessingMixin`; keeps the
TL-named surface out of transformer.py. The switches (`set_use_attn_result`, ...) only decide which
TL-gated hook points a default `run_with_cache` records: a hook point that is hooked always fires.
"""

from __future__ import annotations

import torch

from interp.compat.config_view import TLConfigView
from interp.compat.processing import TLProcessingMixin
from interp.compat.tokens import TLTokensMixin
from interp.compat.weights import TLWeightsMixin

# TL-gated hook points -> the switch that makes a default run_with_cache record them.
GATED = {
    "hook_attn_in": "use_attn_in",
    "hook_q_input": "use_split_qkv_input",
    "hook_k_input": "use_split_qkv_input",
    "hook_v_input": "use_split_qkv_input",
    "hook_mlp_in": "use_hook_mlp_in",
}


class TLModelMixin(TLTokensMixin, TLWeightsMixin, TLProcessingMixin):
    model_name: str
    original_architecture: str
    tl_switches: dict[str, bool]

    def _init_compat(self) -> None:
        """Call in __init__ before any submodule: plain attributes, not nn.Module state."""
        self.__dict__["_cfg_view"] = TLConfigView(self)  # type: ignore[arg-type]
        self.model_name = "custom"
        self.original_architecture = "HookedTransformer"
        self.tl_switches = dict.fromkeys(
            ("use_attn_result", "use_split_qkv_input", "use_attn_in", "use_hook_mlp_in"), False
        )
        self.processing: dict[str, bool] = {}  # weight-processing steps applied (fold_ln, ...)

    @property
    def cfg(self) -> TLConfigView:
        """The config under TransformerLens's names as well as interp's; the raw one is `model.config`."""
        return self.__dict__["_cfg_view"]

    @property
    def device(self) -> torch.device:
        return self.W_E.device  # type: ignore[attr-defined]

    @property
    def dtype(self) -> torch.dtype:
        return self.W_E.dtype  # type: ignore[attr-defined]

    # ---- TL's switches -------------------------------------------------------------------------------------
    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """Record per-head results in default caches (interp's caches always can: they are derived from z)."""
        self.tl_switches["use_attn_result"] = bool(use_attn_result)

    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """Record `blocks.{l}.hook_q_input/k_input/v_input` ([batch, pos, head, d_model]) in default caches."""
        self.tl_switches["use_split_qkv_input"] = bool(use_split_qkv_input)

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        self.tl_switches["use_attn_in"] = bool(use_attn_in)

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        self.tl_switches["use_hook_mlp_in"] = bool(use_hook_mlp_in)

    def default_cache_names(self, names: list[str]) -> list[str]:
        """All hook names minus the TL-gated ones whose switch is off (they cost n_heads x resid each)."""
        on = dict(self.tl_switches)
        on["use_attn_in"] = on["use_attn_in"] and not on["use_split_qkv_input"]  # TL: split inputs win
        return [n for n in names if on.get(GATED.get(n.rsplit(".", 1)[-1], ""), True)]

    def __repr__(self) -> str:
        c = self.config  # type: ignore[attr-defined]
        heads = f"{c.n_heads} heads" + (f" ({c.kv_heads} kv)" if c.kv_heads != c.n_heads else "")
        return (
            f"HookedTransformer({self.model_name!r}, {self.original_architecture}: {c.n_layers} layers, "
            f"d_model={c.d_model}, {heads} x d_head={c.d_head}, d_mlp={c.d_mlp}, d_vocab={c.d_vocab}, "
            f"n_ctx={c.n_ctx}, {c.norm}, {c.positional} positions; {self.device}, {self.dtype})"
        )
