"""`Checkpoint`: hands out a Hugging Face checkpoint's tensors by name, checking shapes, and remembers use."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor

from interp.errors import LoadError
from interp.storage import transient_empty


class Checkpoint:
    """Every tensor a converter needs goes through `take`, which checks its name and shape, so a missing or
    misshapen tensor is reported by name with both shapes; `check_all_used` makes leftovers an error.

    `tensors` maps names to tensors and may read each one only when asked (`sources.open_weights`), so a
    family's `weights` iterator never makes the whole checkpoint resident at once.
    """

    IGNORED = re.compile(r".*(attn\.bias|attn\.masked_bias|rotary_emb\.inv_freq)$")  # buffers, not weights

    def __init__(self, tensors: Mapping[str, Tensor], prefix: str) -> None:
        # Some checkpoints (the original gpt2 upload) omit the "transformer." prefix; accept both.
        self.tensors = tensors
        self.original = {k.removeprefix(prefix): k for k in tensors}
        self.prefix = prefix if any(k.startswith(prefix) for k in tensors) else ""
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return self.original.get(key, self.prefix + key)

    def keys(self) -> list[str]:
        """Tensor names without the family prefix."""
        return list(self.original)

    @property
    def state(self) -> Mapping[str, Tensor]:
        """Name (prefix omitted) -> tensor, each read only on access; for looking at which names exist.
        Tensors a converter uses go through `take`."""
        return _Renamed(self.tensors, self.original)

    def has(self, key: str) -> bool:
        return key in self.original

    def take(self, key: str, shape: tuple[int, ...]) -> Tensor:
        """The tensor `key` (prefix omitted), checked to have `shape`; floats come at least as float32, so a
        converter's arithmetic is exact and the loader rounds once, into the model's dtype."""
        if key not in self.original:
            raise LoadError(f"checkpoint is missing tensor {self._name(key)} (expected shape {shape})")
        t = self.tensors[self.original[key]]
        if tuple(t.shape) != shape:
            raise LoadError(
                f"tensor {self._name(key)} has shape {tuple(t.shape)}, but the config implies {shape}"
            )
        self.used.add(key)
        wide = torch.promote_types(t.dtype, torch.float32)
        if not t.is_floating_point() or t.dtype == wide or t.device.type != "cpu":
            return t if not t.is_floating_point() else t.to(wide)
        return transient_empty(list(t.shape), wide).copy_(t)

    def check_all_used(self, arch: str) -> None:
        left = [self._name(k) for k in self.original if k not in self.used and not self.IGNORED.match(k)]
        if left:
            raise LoadError(f"{arch}: checkpoint has tensors interp does not map: {left[:8]}")


class _Renamed(Mapping[str, Tensor]):
    def __init__(self, tensors: Mapping[str, Tensor], original: dict[str, str]) -> None:
        self.tensors, self.original = tensors, original

    def __getitem__(self, key: str) -> Tensor:
        return self.tensors[self.original[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.original)

    def __len__(self) -> int:
        return len(self.original)
