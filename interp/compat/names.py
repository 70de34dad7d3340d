"""TransformerLens's activation shorthand at the cache boundary: `cache["attn", 0]`, `cache["resid_post", -1]`.

`get_act_name` follows `transformer_lens.utils.get_act_name` (its aliases: "attn" is the pattern, "key" is k,
"mlp_post" is post, layer types "a"/"m"/"attention", and packed forms such as "k6" or "scale4ln1"), plus
negative layers counted from the end, as TL's cache does. Each alias resolves to the one stored key.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

_ACT_ALIASES = {
    "attn": "pattern",
    "attn_logits": "attn_scores",
    "key": "k",
    "query": "q",
    "value": "v",
    "mlp_pre": "pre",
    "mlp_mid": "mid",
    "mlp_post": "post",
}
_LAYER_TYPE_ALIASES = {"a": "attn", "m": "mlp", "b": "", "block": "", "blocks": "", "attention": "attn"}
_ATTN = {"k", "v", "q", "z", "rot_k", "rot_q", "result", "pattern", "attn_scores"}
_MLP = {"pre", "post", "mid", "pre_linear"}
_LN = {"scale", "normalized"}
_BLOCK = {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "attn_in", "q_input", "k_input",
          "v_input", "mlp_in"}  # fmt: skip
_KNOWN = _ATTN | _MLP | _LN | _BLOCK | {"embed", "pos_embed"}


def get_act_name(
    name: str, layer: int | None = None, layer_type: str | None = None, n_layers: int | None = None
) -> str:
    """TL shorthand -> hook name; with `n_layers`, a negative layer counts from the end."""
    if ("." in name or name.startswith("hook_")) and layer is None and layer_type is None:
        return name
    packed = re.match(r"([a-z_]+?)(\d+)([a-z]\w*)?$", name)
    if packed is not None and layer is None:
        name, layer_str, layer_type = packed.group(1), packed.group(2), packed.group(3)
        layer = int(layer_str)
    if layer is not None:
        layer = _layer(layer, n_layers)
    name = _ACT_ALIASES.get(name, name)
    if name in _ATTN:
        layer_type = "attn"
    elif name in _MLP:
        layer_type = "mlp"
    elif layer_type in _LAYER_TYPE_ALIASES:
        layer_type = _LAYER_TYPE_ALIASES[layer_type]
    if name not in _KNOWN:
        raise KeyError(
            f"unknown activation shorthand {name!r}; known: {', '.join(sorted(_KNOWN | set(_ACT_ALIASES)))} "
            "(or pass the full hook name)"
        )
    if name in ("embed", "pos_embed"):
        return f"hook_{name}"
    if name in _LN:
        if layer is None:
            return f"ln_final.hook_{name}"
        layer_type = layer_type or "ln1"
    elif layer is None:
        raise KeyError(f"{name!r} needs a layer, e.g. cache[{name!r}, 0]")
    prefix = "" if layer is None else f"blocks.{layer}."
    return prefix + (f"{layer_type}." if layer_type else "") + f"hook_{name}"


def _layer(layer: Any, n_layers: int | None) -> int:
    if not isinstance(layer, int):
        raise KeyError(f"the layer must be an int, got {layer!r}")
    if layer < 0:
        if n_layers is None or layer < -n_layers:
            raise KeyError(f"layer {layer} is out of range for a {n_layers}-layer model")
        return layer + n_layers
    return layer


def unknown_key(key: Any, name: str, known: Iterable[str]) -> KeyError:
    """A KeyError that names the closest stored keys (did-you-mean)."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = f"{key!r} (= {name!r})" if key != name else repr(name)
    return KeyError(
        f"{shown} is not in this cache{hint} (cache.keys() lists them; run_with_cache with a "
        "names_filter that includes it)"
    )
