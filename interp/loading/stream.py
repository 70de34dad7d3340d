"""Stream `(key, tensor)` pairs into a model built on the meta device, one parameter at a time.

The model is built with no storage at all; each parameter is allocated in the requested dtype and device
only when its tensor arrives, and the source tensor is dropped right after the copy. So a load holds the
model plus one checkpoint tensor, never a state dict beside the model (formerly ~3x the model in RAM).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from interp.errors import LoadError


def build_empty(make: Callable[[], nn.Module]) -> Any:
    """`make()` run with every parameter and buffer created on the meta device (no memory)."""
    with torch.device("meta"):
        return make()


def fill(
    model: nn.Module,
    items: Iterable[tuple[str, Tensor]],
    dtype: torch.dtype,
    device: torch.device,
    source: str,
) -> None:
    """Materialise every entry of `model.state_dict()` from `items`, casting floats to `dtype`.

    Each new tensor keeps the meta tensor's strides, so per-head parameters keep their memory layout
    (`layers.attention.per_head_param`: [head, d_model, d_head] stored as [d_model, head, d_head]).
    A parameter that several modules share is replaced everywhere at once. An unknown, repeated, misshapen
    or missing key is a LoadError naming `source`.
    """
    expected = model.state_dict(keep_vars=True)
    places: dict[int, list[tuple[nn.Module, str, bool]]] = {}  # id(meta tensor) -> every (module, name)
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None:
                places.setdefault(id(p), []).append((module, name, True))
        for name, b in module._buffers.items():
            if b is not None:
                places.setdefault(id(b), []).append((module, name, False))
    done: set[str] = set()
    for key, value in items:
        if key not in expected:
            raise LoadError(f"{source}: unexpected tensor {key}; the model has no such parameter")
        if key in done:
            raise LoadError(f"{source}: tensor {key} was given twice")
        old = expected[key]
        if tuple(value.shape) != tuple(old.shape):
            raise LoadError(
                f"{source}: tensor {key} has shape {tuple(value.shape)}, expected {tuple(old.shape)}"
            )
        target = dtype if old.is_floating_point() else old.dtype
        new = torch.empty_strided(old.shape, old.stride(), dtype=target, device=device)
        with torch.no_grad():
            new.copy_(value)
        del value
        if isinstance(old, nn.Parameter):
            new = nn.Parameter(new, requires_grad=old.requires_grad)
        for module, name, is_param in places[id(old)]:
            (module._parameters if is_param else module._buffers)[name] = new
        done.add(key)
    missing = [k for k in expected if k not in done]
    if missing:
        raise LoadError(f"{source}: missing tensors {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # a non-persistent buffer made at construction: it has no value to stream in
        raise LoadError(f"{source}: {left[:5]} have no values after loading (built on the meta device)")
