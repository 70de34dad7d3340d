"""Typed intervention sites: `Head`, `Attn`, `MLP`, `Neuron`, `Resid`.

A site names one activation (its hook) and the slice of it an intervention touches (its selector). Every
analysis takes these specs instead of mode strings, so "which activation, which slice" is decided here once.

    Head(3, 5)                 # head 5's output (hook_z) at every position
    Head(3, 5, pos=7, part="v") # its value vector at position 7
    Neuron(2, 117, pos=-1)     # one MLP neuron at the last position
    Resid(4, pos=2)            # resid_pre of block 4 at position 2 (stage="mid"/"post" for the others)

`pos` is an int (negative counts from the end), a tuple of ints, or None for every position.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from interp.transformer import HookedTransformer

Pos = int | tuple[int, ...] | None
HeadPart = Literal["z", "q", "k", "v", "pattern", "attn_scores", "rot_q", "rot_k"]
HEAD_PARTS = ("z", "q", "k", "v", "pattern", "attn_scores", "rot_q", "rot_k")
KV_PARTS = ("k", "v", "rot_k")  # parts indexed by key/value head (grouped-query attention)
QUERY_PARTS = ("pattern", "attn_scores")  # [batch, head, query_pos, key_pos]
Stage = Literal["pre", "mid", "post"]
Selector = tuple[Any, ...]  # an index into an activation whose first axis is batch


def _pos_index(pos: Pos) -> Any:
    if pos is None:
        return slice(None)
    return list(pos) if isinstance(pos, tuple) else pos


class Site:
    """Shared behaviour; subclasses are frozen dataclasses with `layer` and `pos` fields."""

    kind: ClassVar[str]
    layer: int
    pos: Pos

    def __post_init__(self) -> None:
        # Frozen specs are hashable; a list of positions would not be, so store it as a tuple.
        if isinstance(self.pos, Sequence) and not isinstance(self.pos, str):
            object.__setattr__(self, "pos", tuple(operator.index(p) for p in self.pos))
        elif self.pos is not None:
            object.__setattr__(self, "pos", operator.index(self.pos))
        for f in fields(self):  # type: ignore[arg-type]
            if f.type == "int":  # accept numpy / tensor integers, store plain ints
                try:
                    object.__setattr__(self, f.name, operator.index(getattr(self, f.name)))
                except TypeError:
                    raise TypeError(f"{self}: {f.name} must be an integer") from None

    @property
    def hook_name(self) -> str:
        raise NotImplementedError

    @property
    def selector(self) -> Selector:
        """Index of the touched slice in the activation [batch, ...]."""
        return (slice(None), _pos_index(self.pos))

    def validate(self, model: HookedTransformer, n_pos: int | None = None) -> None:
        """Raise ValueError if this site does not exist in `model` (or in a run of `n_pos` tokens)."""
        n = model.cfg.n_layers
        if not 0 <= self.layer < n:
            raise ValueError(
                f"{self}: layer {self.layer} out of range; the model has {n} layers (0..{n - 1})"
            )
        if self.hook_name not in model.hook_dict:
            raise ValueError(f"{self}: the model has no hook {self.hook_name}")
        if n_pos is not None and self.pos is not None:
            for p in self.pos if isinstance(self.pos, tuple) else (self.pos,):
                if not -n_pos <= p < n_pos:
                    raise ValueError(f"{self}: position {p} out of range for a {n_pos}-token input")

    @classmethod
    def every(
        cls, model: HookedTransformer, n_pos: int | None = None, layers: Iterable[int] | None = None
    ) -> list:
        """One site per (layer, position) for layer-wide sites (Attn, MLP); per layer when n_pos is None."""
        return [cls(layer, p) for layer in _layers(model, layers) for p in _positions(n_pos)]

    def to_row(self) -> dict[str, Any]:
        """Columns describing this site in a results DataFrame (pos is left out when it is None)."""
        row: dict[str, Any] = {"site": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v is not None:
                row[f.name] = v
        return row


def _layers(model: HookedTransformer, layers: Iterable[int] | None) -> list[int]:
    return list(range(model.cfg.n_layers)) if layers is None else list(layers)


def _positions(n_pos: int | None) -> list[int | None]:
    return [None] if n_pos is None else list(range(n_pos))


@dataclass(frozen=True)
class Resid(Site):
    """The residual stream entering block `layer` (stage "pre"), after its attention ("mid") or after it ("post")."""

    kind: ClassVar[str] = "resid"
    layer: int
    pos: Pos = None
    stage: Stage = "pre"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage not in ("pre", "mid", "post"):
            raise ValueError(f"Resid stage must be 'pre', 'mid' or 'post', got {self.stage!r}")

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.hook_resid_{self.stage}"

    def to_row(self) -> dict[str, Any]:
        row = super().to_row()
        if self.stage == "pre":
            del row["stage"]
        return row

    @classmethod
    def every(
        cls,
        model: HookedTransformer,
        n_pos: int | None = None,
        stage: Stage = "pre",
        layers: Iterable[int] | None = None,
    ) -> list[Resid]:
        """One site per (layer, position); per layer only when n_pos is None."""
        return [cls(layer, p, stage) for layer in _layers(model, layers) for p in _positions(n_pos)]


@dataclass(frozen=True)
class Attn(Site):
    """A whole attention layer's output, attn_out (the sum of its heads plus b_O)."""

    kind: ClassVar[str] = "attn"
    layer: int
    pos: Pos = None

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.hook_attn_out"


@dataclass(frozen=True)
class MLP(Site):
    """A whole MLP layer's output, mlp_out."""

    kind: ClassVar[str] = "mlp"
    layer: int
    pos: Pos = None

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.hook_mlp_out"


@dataclass(frozen=True)
class MLPIn(Site):
    """What an MLP reads: its input norm's output (ln2.hook_normalized), where a transcoder reads."""

    kind: ClassVar[str] = "mlp_in"
    layer: int
    pos: Pos = None

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.ln2.hook_normalized"


@dataclass(frozen=True)
class Head(Site):
    """One attention head. `part` picks the activation: its output z (default), q, k, v, or its pattern
    (also its masked scores "attn_scores", and "rot_q"/"rot_k" after the rotary embedding, on RoPE models).

    z is patched rather than hook_result: result = z @ W_O[h] is linear in z, so zeroing, averaging or
    copying z does the same to the head's output without materialising the per-head [d_model] tensor.
    For "pattern", `pos` is the destination (query) position. For k and v, `head` is a key/value head.
    """

    kind: ClassVar[str] = "head"
    layer: int
    head: int
    pos: Pos = None
    part: HeadPart = "z"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.part not in HEAD_PARTS:
            raise ValueError(f"Head part must be one of {', '.join(HEAD_PARTS)}, got {self.part!r}")

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.attn.hook_{self.part}"

    @property
    def selector(self) -> Selector:
        if self.part in QUERY_PARTS:  # [batch, head, query_pos, key_pos]
            return (slice(None), self.head, _pos_index(self.pos))
        return (slice(None), _pos_index(self.pos), self.head)  # [batch, pos, head, d_head]

    def validate(self, model: HookedTransformer, n_pos: int | None = None) -> None:
        super().validate(model, n_pos)
        heads = model.cfg.kv_heads if self.part in KV_PARTS else model.cfg.n_heads
        what = "key/value heads" if self.part in KV_PARTS else "heads"
        if not 0 <= self.head < heads:
            raise ValueError(f"{self}: head {self.head} out of range; layer {self.layer} has {heads} {what}")

    def to_row(self) -> dict[str, Any]:
        row = super().to_row()
        if self.part == "z":
            del row["part"]  # the common case; keeps head-output sweeps to layer/head/pos columns
        return row

    @classmethod
    def every(
        cls,
        model: HookedTransformer,
        n_pos: int | None = None,
        part: HeadPart = "z",
        layers: Iterable[int] | None = None,
    ) -> list[Head]:
        """Every (layer, [pos,] head), in that order (TransformerLens's order for z, q, k and v sweeps)."""
        heads = model.cfg.kv_heads if part in ("k", "v") else model.cfg.n_heads
        return [
            cls(layer, h, p, part)
            for layer in _layers(model, layers)
            for p in _positions(n_pos)
            for h in range(heads)
        ]


@dataclass(frozen=True)
class Neuron(Site):
    """One MLP neuron: column `index` of hook_post (the activation that scales W_out[index])."""

    kind: ClassVar[str] = "neuron"
    layer: int
    index: int
    pos: Pos = None

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.mlp.hook_post"

    @property
    def selector(self) -> Selector:
        return (slice(None), _pos_index(self.pos), self.index)

    def validate(self, model: HookedTransformer, n_pos: int | None = None) -> None:
        super().validate(model, n_pos)
        if not 0 <= self.index < model.cfg.d_mlp:
            raise ValueError(f"{self}: neuron index {self.index} out of range; d_mlp is {model.cfg.d_mlp}")

    def to_row(self) -> dict[str, Any]:
        row = super().to_row()
        row["neuron"] = row.pop("index")
        return row

    @classmethod
    def every(
        cls, model: HookedTransformer, pos: Pos = None, layers: Iterable[int] | None = None
    ) -> list[Neuron]:
        return [cls(layer, i, pos) for layer in _layers(model, layers) for i in range(model.cfg.d_mlp)]


Spec = Resid | Attn | MLP | MLPIn | Head | Neuron
Cell = Spec | Sequence[Spec]  # one intervention: a site, or several sites edited together


def cell_sites(cell: Cell) -> tuple[Spec, ...]:
    if isinstance(cell, Site):
        return (cell,)
    sites = tuple(cell)
    if not sites or not all(isinstance(s, Site) for s in sites):
        raise TypeError(f"expected a site spec or a non-empty sequence of them, got {cell!r}")
    return sites  # type: ignore[return-value]


def cell_row(cell: Cell) -> dict[str, Any]:
    sites = cell_sites(cell)
    return sites[0].to_row() if len(sites) == 1 else {"site": " + ".join(map(str, sites))}


def validate_cells(model: HookedTransformer, cells: Sequence[Cell], n_pos: int | None = None) -> None:
    """Check every site up front, so a bad spec fails before any forward pass."""
    if not cells:
        raise ValueError("no sites given")
    for cell in cells:
        for site in cell_sites(cell):
            site.validate(model, n_pos)
