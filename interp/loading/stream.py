"""Stream `(key, tensor)` pairs into a model built on the meta device, one parameter at a time.

The model is built with no storage at all; each parameter is allocated in the requested dtype and device
only when its tensor arrives, and the source tensor is dropped right after the copy. So a load holds the
model plus one checkpoint tensor, never a state dict beside the model (formerly ~3x the model in RAM).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from interp.errors import LoadError


def build_empty(make: Callable[[], nn.Module]) -> Any:
    """`make()` run with every parameter and buffer created on the meta device (no memory)."""
    with torch.device("meta"):
        return make()


class Destination(Protocol):
    """Where each tensor goes (`interp.loading.placement.Placement`): a device, or disk (None)."""

    def device_of(self, key: str) -> torch.device | None: ...

    def disk_buffer(self, key: str, like: Tensor) -> Tensor: ...

    def written(self, key: str) -> None: ...


def fill(
    model: nn.Module,
    items: Iterable[tuple[str, Tensor]],
    dtype: torch.dtype,
    device: torch.device | Destination,
    source: str,
) -> None:
    """Materialise every entry of `model.state_dict()` from `items`, casting floats to `dtype`.

    `device` is one device, or a `Destination` naming each tensor's: a tensor it sends to disk is copied
    straight into a file-backed buffer (`disk_buffer`, no anonymous memory) and its parameter stays on the
    meta device, in `dtype`, for accelerate's hooks to fill.

    Each new tensor keeps the meta tensor's strides, so per-head parameters keep their memory layout
    (`layers.attention.per_head_param`: [head, d_model, d_head] stored as nn.Linear's [head * d_head, d_model]).
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
        dev = device if isinstance(device, torch.device) else device.device_of(key)
        meta = torch.empty_strided(old.shape, old.stride(), dtype=target, device="meta")
        if dev is None:
            new = device.disk_buffer(key, meta)  # type: ignore[union-attr]
        else:
            new = torch.empty_strided(old.shape, old.stride(), dtype=target, device=dev)
        with torch.no_grad():
            new.copy_(value)
        del value
        if dev is None:  # offloaded: the file holds the values, the model a dtype-correct meta tensor
            device.written(key)  # type: ignore[union-attr]
            new = meta
        if isinstance(old, nn.Parameter):
            new = nn.Parameter(new, requires_grad=old.requires_grad)
        for module, name, is_param in places[id(old)]:
            (module._parameters if is_param else module._buffers)[name] = new
        done.add(key)
    missing = [k for k in expected if k not in done]
    if missing:
        raise LoadError(f"{source}: missing tensors {missing[:5]}" + (" ..." if len(missing) > 5 else ""))
    on_disk = set() if isinstance(device, torch.device) else {k for k in done if device.device_of(k) is None}
    tensors = [*model.named_parameters(), *model.named_buffers()]
    left = [n for n, t in tensors if t.is_meta and n not in on_disk]
    if left:  # a non-persistent buffer made at construction: it has no value to stream in
        raise LoadError(f"{source}: {left[:5]} have no values after loading (built on the meta device)")
