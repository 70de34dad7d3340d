"""Typed sites: the one way to name an activation in `interp.analysis`.

A site names one activation (its hook) and the slice of it an intervention touches (its selector):

    Embed(pos=(2, 3))           # the token embeddings of positions 2 and 3 (hook_embed)
    ResidPre(4, pos=2)          # the residual entering block 4; ResidMid after its attention, ResidPost after it
    ResidFinal(pos=-1)          # the residual after the last block (what ln_final reads)
    Attn(3), MLP(3, pos=-1)     # attn_out / mlp_out of block 3 ("attn" is always the attention *output*)
    MLPPost(3)                  # the MLP's hidden activations (hook_post), every neuron
    Head(3, 5)                  # head 5's output z at every position
    Head(3, 5, pos=7, part="v") # its value vector at position 7 (parts: z q k v pattern result)
    Neuron(2, 117, pos=-1)      # one MLP neuron (hook_post) at the last position
    Edge(5, dest=9, sources=(2, 3))  # attention scores from keys 2, 3 into query 9, every head of block 5

`pos` is an absolute position: an int (negative counts from the end of the sequence), a tuple of them, or
None for every position. Hook names come from one table, `SITES` below, through `interp.cache.act_name`
(the cache shorthand `cache["resid_pre", 4]` reads the same table), so no other module builds one.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor

from interp.cache import act_name

if TYPE_CHECKING:
    from interp.transformer import HookedTransformer

Pos = int | tuple[int, ...] | None
HeadPart = Literal["z", "q", "k", "v", "pattern", "result", "attn_scores", "rot_q", "rot_k"]
Stage = Literal["pre", "mid", "post"]
Selector = tuple[Any, ...]  # an index into an activation whose first axis is batch

# The site table: kind -> (act_name shorthand, axis of the (query) positions). Patterns and scores are
# [batch, head, query_pos, key_pos]; everything else is [batch, pos, ...].
SITES: dict[str, tuple[str, int]] = {
    "embed": ("embed", 1),
    "pos_embed": ("pos_embed", 1),
    "resid_pre": ("resid_pre", 1),
    "resid_mid": ("resid_mid", 1),
    "resid_post": ("resid_post", 1),
    "attn": ("attn_out", 1),
    "mlp": ("mlp_out", 1),
    "mlp_post": ("post", 1),
    "mlp_in": ("normalized", 1),
    "neuron": ("post", 1),
    "edge": ("attn_scores", 2),
    **{
        f"head_{part}": (part, 2 if part in ("pattern", "attn_scores") else 1)
        for part in ("z", "q", "k", "v", "pattern", "result", "attn_scores", "rot_q", "rot_k")
    },
}


def _pos_index(pos: Pos) -> Any:
    if pos is None:
        return slice(None)
    return list(pos) if isinstance(pos, tuple) else pos


def _as_positions(value: Any) -> Pos:
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(operator.index(p) for p in value)
    return operator.index(value)


class Site:
    """Shared behaviour; subclasses are frozen dataclasses with `layer` and `pos` fields."""

    kind: ClassVar[str]
    layer: int
    pos: Pos

    def __post_init__(self) -> None:
        # Frozen specs are hashable; a list of positions would not be, so store it as a tuple.
        object.__setattr__(self, "pos", _as_positions(self.pos))
        for f in fields(self):  # type: ignore[arg-type]
            if f.type == "int":  # accept numpy / tensor integers, store plain ints
                try:
                    object.__setattr__(self, f.name, operator.index(getattr(self, f.name)))
                except TypeError:
                    raise TypeError(f"{self}: {f.name} must be an integer") from None

    @property
    def table_key(self) -> str:
        return self.kind

    @property
    def hook_name(self) -> str:
        return act_name(SITES[self.table_key][0], self.layer)

    @property
    def pos_axis(self) -> int:
        """The activation axis holding (query) positions."""
        return SITES[self.table_key][1]

    @property
    def start(self) -> int | None:
        """The first block a forward must run for an edit here to act (None: from the tokens)."""
        return self.layer

    def select(self, positions: Any) -> Selector:
        """Index of the touched slice, given the tensor index of this site's positions."""
        return (slice(None), positions)

    @property
    def selector(self) -> Selector:
        """Index of the touched slice in the activation [batch, ...] of a whole-sequence forward."""
        return self.select(_pos_index(self.pos))

    def at(self, model: HookedTransformer) -> Site:
        """This site in `model` (sites that depend on the model's depth resolve to a fixed layer)."""
        return self

    def scope(self, model: HookedTransformer) -> AbstractContextManager[Any]:
        """What must be open for this site's hook to exist (a spliced dictionary for a `Latent`)."""
        return nullcontext()

    def scope_key(self) -> Any:
        """Sites with equal keys share one scope (one splice per dictionary)."""
        return None

    def validate(self, model: HookedTransformer, n_pos: int | None = None) -> None:
        """Raise ValueError if this site does not exist in `model` (or in a run of `n_pos` tokens)."""
        n = model.cfg.n_layers
        if not 0 <= self.layer < n:
            raise ValueError(
                f"{self}: layer {self.layer} out of range; the model has {n} layers (0..{n - 1})"
            )
        if self.hook_name not in model.hook_dict:
            raise ValueError(f"{self}: the model has no hook {self.hook_name}")
        if n_pos is not None:
            check_positions(self, self.pos, n_pos)

    @classmethod
    def every(
        cls, model: HookedTransformer, n_pos: int | None = None, layers: Iterable[int] | None = None
    ) -> list:
        """One site per (layer, position) for layer-wide sites; per layer when n_pos is None."""
        return [cls(layer, p) for layer in _layers(model, layers) for p in _positions(n_pos)]

    def to_row(self) -> dict[str, Any]:
        """Columns describing this site in a results DataFrame (pos is left out when it is None)."""
        row: dict[str, Any] = {"site": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            if v is not None:
                row[f.name] = v
        return row


def check_positions(site: object, pos: Pos, n_pos: int) -> None:
    for p in pos if isinstance(pos, tuple) else () if pos is None else (pos,):
        if not -n_pos <= p < n_pos:
            raise ValueError(f"{site}: position {p} out of range for a {n_pos}-token input")


def _layers(model: HookedTransformer, layers: Iterable[int] | None) -> list[int]:
    return list(range(model.cfg.n_layers)) if layers is None else list(layers)


def check_layers(model: HookedTransformer, layers: Iterable[int] | None) -> list[int]:
    """The layers asked for (default all), each checked against the model's depth."""
    out, n = _layers(model, layers), model.cfg.n_layers
    bad = [layer for layer in out if not 0 <= layer < n]
    if bad:
        raise ValueError(f"layers {bad} out of range; the model has {n} layers (0..{n - 1})")
    return out


def _positions(n_pos: int | None) -> list[int | None]:
    return [None] if n_pos is None else list(range(n_pos))


@dataclass(frozen=True)
class Embed(Site):
    """The token embeddings (hook_embed), before learned positions are added."""

    kind: ClassVar[str] = "embed"
    pos: Pos = None

    @property
    def hook_name(self) -> str:
        return act_name("embed")

    @property
    def start(self) -> None:
        return None

    def validate(self, model: HookedTransformer, n_pos: int | None = None) -> None:
        if n_pos is not None:
            check_positions(self, self.pos, n_pos)


@dataclass(frozen=True)
class LayerSite(Site):
    """A site that covers a whole layer's activation at `pos`; subclasses only name their kind."""

    layer: int
    pos: Pos = None


@dataclass(frozen=True)
class PosEmbed(Embed):
    """The learned position embeddings (hook_pos_embed), on models that have them."""

    kind: ClassVar[str] = "pos_embed"

    @property
    def hook_name(self) -> str:
        return act_name("pos_embed")

    def validate(self, model: HookedTransformer, n_pos: int | None = None) -> None:
        if self.hook_name not in model.hook_dict:
            raise ValueError(f"{self}: the model has no learned position embeddings")
        super().validate(model, n_pos)


class ResidPre(LayerSite):
    """The residual stream entering block `layer`."""

    kind: ClassVar[str] = "resid_pre"


class ResidMid(LayerSite):
    """The residual stream of block `layer` after its attention, before its MLP."""

    kind: ClassVar[str] = "resid_mid"


class ResidPost(LayerSite):
    """The residual stream after block `layer` (ROME's hidden state h_i^(l))."""

    kind: ClassVar[str] = "resid_post"


@dataclass(frozen=True)
class ResidFinal(Site):
    """The residual stream after the last block, what ln_final and the unembedding read."""

    kind: ClassVar[str] = "resid_final"
    pos: Pos = None

    @property
    def hook_name(self) -> str:
        raise AttributeError("ResidFinal's hook depends on the model's depth: use site.at(model).hook_name")

    def at(self, model: HookedTransformer) -> Site:
        return ResidPost(model.cfg.n_layers - 1, self.pos)

    def validate(self, model: HookedTransformer, n_pos: int | None = None) -> None:
        self.at(model).validate(model, n_pos)

    @classmethod
    def every(cls, model: HookedTransformer, n_pos: int | None = None, layers: object = None) -> list:
        return [cls(p) for p in _positions(n_pos)]


RESID: dict[str, type[Site]] = {"pre": ResidPre, "mid": ResidMid, "post": ResidPost}


class Resid:
    """Deprecated spelling: `Resid(layer, pos, stage)` is `ResidPre`, `ResidMid` or `ResidPost` (stage "pre")."""

    def __new__(cls, layer: int, pos: Pos = None, stage: Stage = "pre") -> Any:  # type: ignore[misc]
        return _resid_class(stage)(layer, pos)

    @staticmethod
    def every(
        model: HookedTransformer,
        n_pos: int | None = None,
        stage: Stage = "pre",
        layers: Iterable[int] | None = None,
    ) -> list[Site]:
        return _resid_class(stage).every(model, n_pos, layers)


def _resid_class(stage: str) -> type[Site]:
    if stage not in RESID:
        raise ValueError(f"Resid stage must be 'pre', 'mid' or 'post', got {stage!r}")
    return RESID[stage]


class Attn(LayerSite):
    """A whole attention layer's output, attn_out (the sum of its heads plus b_O)."""

    kind: ClassVar[str] = "attn"


class MLP(LayerSite):
    """A whole MLP layer's output, mlp_out."""

    kind: ClassVar[str] = "mlp"


class MLPPost(LayerSite):
    """An MLP layer's hidden activations (hook_post, [batch, pos, d_mlp]), every neuron; `Neuron` is one."""

    kind: ClassVar[str] = "mlp_post"


HEAD_PARTS = ("z", "q", "k", "v", "pattern", "result", "attn_scores", "rot_q", "rot_k")
KV_PARTS = ("k", "v", "rot_k")  # parts indexed by key/value head (grouped-query attention)
QUERY_PARTS = ("pattern", "attn_scores")  # [batch, head, query_pos, key_pos]


class MLPIn(LayerSite):
    """What an MLP reads: its input norm's output (ln2.hook_normalized), where a transcoder reads."""

    kind: ClassVar[str] = "mlp_in"

    @property
    def hook_name(self) -> str:
        return act_name("normalized", self.layer, "ln2")


@dataclass(frozen=True)
class Head(Site):
    """One attention head. `part` picks the activation: its output z (default), q, k, v, pattern or result
    (also its masked scores "attn_scores", and "rot_q"/"rot_k" after the rotary embedding, on RoPE models).

    z is patched rather than hook_result: result = z @ W_O[h] is linear in z, so zeroing, averaging or
    copying z does the same to the head's output without materialising the per-head [d_model] tensor
    ("result" is there for readouts and for edits that are not linear).
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
            raise ValueError(
                f"Head part must be one of {', '.join(map(repr, HEAD_PARTS))}, got {self.part!r}"
            )

    @property
    def table_key(self) -> str:
        return f"head_{self.part}"

    def select(self, positions: Any) -> Selector:
        if self.part in QUERY_PARTS:  # [batch, head, query_pos, key_pos]
            return (slice(None), self.head, positions)
        return (slice(None), positions, self.head)  # [batch, pos, head, d_head]

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
        heads = model.cfg.kv_heads if part in KV_PARTS else model.cfg.n_heads
        return [
            cls(layer, h, p, part)
            for layer in _layers(model, layers)
            for p in _positions(n_pos)
            for h in range(heads)
        ]


def head_outputs(z: Tensor, W_O: Tensor) -> Tensor:
    """Each head's write into the residual stream, z[..., h, :] @ W_O[h]: [..., head, d_head] -> [..., head, d_model]."""
    return torch.einsum("...hd,hdm->...hm", z, W_O.to(z.dtype))


@dataclass(frozen=True)
class Neuron(Site):
    """One MLP neuron: column `index` of hook_post (the activation that scales W_out[index])."""

    kind: ClassVar[str] = "neuron"
    layer: int
    index: int
    pos: Pos = None

    def select(self, positions: Any) -> Selector:
        return (slice(None), positions, self.index)

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


@dataclass(frozen=True)
class Edge(Site):
    """The attention edges sources -> dest in every head of block `layer` (its pre-softmax scores).

    One layer per Edge: a knockout over a window of layers is a cell holding one Edge per layer.
    `dest` is a query position (absolute, negative from the end); `sources` are key positions.
    """

    kind: ClassVar[str] = "edge"
    layer: int
    dest: int
    sources: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", _as_positions(tuple(self.sources)))
        object.__setattr__(self, "dest", operator.index(self.dest))
        object.__setattr__(self, "layer", operator.index(self.layer))
        if not self.sources:
            raise ValueError(f"{self}: no source positions")

    @property
    def pos(self) -> int:  # type: ignore[override]
        return self.dest

    def select(self, positions: Any) -> Selector:
        return (slice(None), slice(None), positions, list(self.sources))

    def validate(self, model: HookedTransformer, n_pos: int | None = None) -> None:
        super().validate(model, n_pos)
        if n_pos is not None:
            dest = self.dest % n_pos if -n_pos <= self.dest < n_pos else self.dest
            bad = [s for s in self.sources if not 0 <= s <= dest]
            if bad:
                raise ValueError(
                    f"{self}: source positions {bad} outside 0..{dest}, the keys query {dest} sees"
                )


Spec = (
    Embed
    | PosEmbed
    | ResidPre
    | ResidMid
    | ResidPost
    | ResidFinal
    | Attn
    | MLP
    | MLPPost
    | MLPIn
    | Head
    | Neuron
    | Edge
)
Cell = Site | Sequence[Site]  # one intervention: a site, or several sites edited together


def cell_sites(cell: Cell) -> tuple[Site, ...]:
    if isinstance(cell, Site):
        return (cell,)
    sites = tuple(cell)
    if not sites or not all(isinstance(s, Site) for s in sites):
        raise TypeError(f"expected a site spec or a non-empty sequence of them, got {cell!r}")
    return sites


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
