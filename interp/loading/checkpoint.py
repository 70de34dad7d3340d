"""`Checkpoint`: hands out a Hugging Face state dict's tensors by name, checking shapes, and remembers use."""

from __future__ import annotations

import re

from torch import Tensor

from interp.errors import LoadError


class Checkpoint:
    """Every tensor a converter needs goes through `take`, which checks its name and shape, so a missing or
    misshapen tensor is reported by name with both shapes; `check_all_used` makes leftovers an error."""

    IGNORED = re.compile(r".*(attn\.bias|attn\.masked_bias|rotary_emb\.inv_freq)$")  # buffers, not weights

    def __init__(self, state: dict[str, Tensor], prefix: str) -> None:
        # Some checkpoints (the original gpt2 upload) omit the "transformer." prefix; accept both.
        self.state = {k.removeprefix(prefix): v for k, v in state.items()}
        self.original = {k.removeprefix(prefix): k for k in state}
        self.prefix = prefix if any(k.startswith(prefix) for k in state) else ""
        self.used: set[str] = set()

    def _name(self, key: str) -> str:
        return self.original.get(key, self.prefix + key)

    def has(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str, shape: tuple[int, ...]) -> Tensor:
        if key not in self.state:
            raise LoadError(f"checkpoint is missing tensor {self._name(key)} (expected shape {shape})")
        t = self.state[key]
        if tuple(t.shape) != shape:
            raise LoadError(
                f"tensor {self._name(key)} has shape {tuple(t.shape)}, but the config implies {shape}"
            )
        self.used.add(key)
        return t.float() if t.is_floating_point() else t

    def check_all_used(self, arch: str) -> None:
        left = [self._name(k) for k in self.state if k not in self.used and not self.IGNORED.match(k)]
        if left:
            raise LoadError(f"{arch}: checkpoint has tensors interp does not map: {left[:8]}")
