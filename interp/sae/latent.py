"""`Latent(sae, index)`: one dictionary latent as an intervention site, like `Neuron(layer, index)`.

Its activation is the spliced dictionary's `hook_sae_acts_post` (named under the hook the dictionary writes,
as in SAELens). Every analysis that takes sites (ablate,
denoise / noise, attribution_patch, the sweep engine) splices the dictionary with the error term while it
runs, so the model's output is unchanged until a latent is edited, and editing latent i by δ moves the host
activation by exactly δ · W_dec[i]: zero-ablating it subtracts act_i · W_dec[i] there.
"""

from __future__ import annotations

import operator
import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, ClassVar

from interp.analysis.specs import Pos, Selector, Site, check_positions
from interp.sae.sae import SAE

_LAYER = re.compile(r"^blocks\.(\d+)\.")


@dataclass(frozen=True)
class Latent(Site):
    """Latent `index` of `sae` at `pos` (None: every position). Hashes by the SAE's identity."""

    kind: ClassVar[str] = "latent"
    sae: SAE
    index: int
    pos: Pos = None
    label: str | None = field(default=None, compare=False)  # a name for tables, e.g. "France"

    def __post_init__(self) -> None:
        if not isinstance(self.sae, SAE):
            raise TypeError(f"Latent needs an interp.sae.SAE, got {type(self.sae).__name__}")
        object.__setattr__(self, "index", operator.index(self.index))
        super().__post_init__()

    @property
    def layer(self) -> int:  # type: ignore[override]
        m = _LAYER.match(self.sae.cfg.hook_name)
        return int(m.group(1)) if m else 0

    @property
    def start(self) -> int | None:
        return self.layer if _LAYER.match(self.sae.cfg.hook_name) else None  # hook_embed: from the tokens

    @property
    def hook_name(self) -> str:
        return f"{self.sae.cfg.write_hook}.hook_sae_acts_post"  # SAELens: under the written hook

    @property
    def pos_axis(self) -> int:
        return 1

    def select(self, positions: Any) -> Selector:
        return (slice(None), positions, self.index)

    def scope(self, model: Any) -> AbstractContextManager[Any]:
        if self.hook_name in model.named_hook_points():  # the caller has spliced it already
            return nullcontext()
        return model.saes([self.sae], use_error_term=True)

    def scope_key(self) -> Any:
        return id(self.sae)

    def validate(self, model: Any, n_pos: int | None = None) -> None:
        if self.sae.cfg.hook_name not in model.hook_dict:
            raise ValueError(f"{self}: the model has no hook {self.sae.cfg.hook_name} for this dictionary")
        if not 0 <= self.index < self.sae.cfg.d_sae:
            raise ValueError(
                f"{self}: latent {self.index} out of range; the dictionary has {self.sae.cfg.d_sae}"
            )
        if n_pos is not None:
            check_positions(self, self.pos, n_pos)

    def to_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"site": self.kind, "sae": self.sae.cfg.hook_name, "latent": self.index}
        if self.pos is not None:
            row["pos"] = self.pos
        if self.label is not None:
            row["label"] = self.label
        return row

    def __repr__(self) -> str:
        extra = "" if self.pos is None else f", pos={self.pos}"
        return f"Latent({self.sae.cfg.hook_name}, {self.index}{extra})"

    @classmethod
    def every(cls, sae: SAE, pos: Pos = None) -> list[Latent]:  # type: ignore[override]
        return [cls(sae, i, pos) for i in range(sae.cfg.d_sae)]
