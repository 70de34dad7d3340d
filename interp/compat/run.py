"""`run_with_cache(..., remove_batch_dim=, pos_slice=, incl_bwd=)`: TransformerLens's caching options.

Same storage rule as interp's default cache (every key owns its storage). `pos_slice` is applied to each
activation's position axis: -3 for per-head activations ([batch, pos, head, ...]), -2 otherwise (for
patterns and scores that is the query position), as TL does. `incl_bwd` runs `output.backward()` and stores
each gradient under `<hook name>_grad`; the output must then be a scalar (e.g. `return_type="loss"`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from interp.compat.slicing import _slice_pos
from interp.hooks import HookPoint, HookSpec, NameFilter

if TYPE_CHECKING:
    from interp.cache import ActivationCache
    from interp.transformer import HookedTransformer, Input

_PER_HEAD = ("hook_q", "hook_k", "hook_v", "hook_z", "hook_result", "hook_rot_q", "hook_rot_k", "hook_attn_in",
             "hook_q_input", "hook_k_input", "hook_v_input")  # fmt: skip


def pos_dim(name: str) -> int:
    return -3 if name.rsplit(".", 1)[-1] in _PER_HEAD else -2


def run_with_cache_tl(
    model: HookedTransformer,
    input: Input,
    names_filter: NameFilter,
    device: torch.device | str | None,
    tl_args: dict[str, Any],
    forward_kwargs: dict[str, Any],
) -> tuple[Any, ActivationCache]:
    from interp.cache import ActivationCache

    remove_batch = bool(tl_args.get("remove_batch_dim", False))
    pos_slice = tl_args.get("pos_slice")
    incl_bwd = bool(tl_args.get("incl_bwd", False))
    names = model.resolve_hook_names(names_filter)
    if names_filter is None:
        names = model.default_cache_names(names)
    store: dict[str, Tensor] = {}
    owned: set[int] = set()

    def saver(suffix: str) -> Any:
        def save(x: Tensor, hook: HookPoint) -> None:
            t = x.detach() if device is None else x.detach().to(device)
            if t.ndim >= -pos_dim(hook.name):
                t = _slice_pos(t, pos_slice, pos_dim(hook.name))
            if (
                t.untyped_storage().data_ptr() in owned
                or t.untyped_storage().nbytes() != t.numel() * t.element_size()
            ):
                t = t.clone()  # shares a buffer with another key or is a view into a larger one
            owned.add(t.untyped_storage().data_ptr())
            store[hook.name + suffix] = t

        return save

    fwd: list[HookSpec] = [(n, saver("")) for n in names]
    bwd: list[HookSpec] = [(n, saver("_grad")) for n in names] if incl_bwd else []
    with model.hooks(fwd, bwd), torch.set_grad_enabled(incl_bwd):
        out = model(input, **forward_kwargs)
        if incl_bwd:
            if not isinstance(out, Tensor) or out.numel() != 1:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(
                    f"incl_bwd calls output.backward(), which needs a scalar; got {shape} "
                    "(pass return_type='loss')"
                )
            out.backward()
    keys = [*names, *(n + "_grad" for n in names if n + "_grad" in store)] if incl_bwd else names
    cache = ActivationCache(store, model, keys=[k for k in keys if k in store])
    if remove_batch:
        cache.remove_batch_dim()
    return out, cache
