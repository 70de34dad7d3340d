"""Edits: what an intervention does at a site, in one shape.

An edit is `fn(activation, at) -> activation | None`, TransformerLens's hook shape with `at` in place of
the hook: `activation` is the slice of the batch the edit owns ([batch, ...], editable in place) and
`at` says where it is — the site, and the *absolute* positions of the tensor's position axis (from the
forward's `SequenceInfo`: a forward over a KV cache sees positions offset.., not 0..). `at.index` is the
site's slice as an index into this tensor; `at.align(ref)` lines a whole-sequence tensor up with it.

The public factories build `Edit` objects, which may read one other run (pyvene's *source*: the prompt
to patch from, the reference batch to average):

    zero()                        the slice becomes 0
    mean_of(reference)            the mean over the reference's real tokens (per position by default)
    resample_from(reference)      a random reference example's activation (seeded)
    patch_from(source, pos_map)   the source run's activation (pos_map: {source position: base position})
    scale(factor), add(vector)    multiply, or add a vector (steering)
    add_noise(values | std=...)   add fixed or seeded Gaussian noise
    knock_out()                   -inf, for attention scores (Edge sites)

Any `fn(activation, at)` callable is an edit too. The engine (`interp.analysis.engine`) binds each edit to
its site and source run once and turns it into hooks with one adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from interp.analysis.specs import Site

if TYPE_CHECKING:
    from interp.analysis.engine import Input, Run

EditFn = Callable[[Tensor, "At"], "Tensor | None"]


@dataclass(frozen=True)
class At:
    """Where an edit acts: the site, and the absolute positions of the activation's position axis."""

    site: Site
    offset: int  # absolute position of the tensor's first position (tokens already in a KV cache)
    n_pos: int  # positions in this tensor
    strict: bool = True  # raise on a position the sequence does not have (False: skip it)

    @property
    def n_seq(self) -> int:
        """Length of the whole sequence so far; negative positions count back from it."""
        return self.offset + self.n_pos

    @property
    def positions(self) -> Tensor:
        """Absolute positions [n_pos] of this tensor's position axis."""
        return torch.arange(self.offset, self.n_seq)

    @property
    def index(self) -> tuple[Any, ...]:
        """The site's slice as an index into this tensor: position p is tensor index p - offset."""
        pos = self.site.pos
        if pos is None:
            return self.site.select(slice(None))
        wanted = pos if isinstance(pos, tuple) else (pos,)
        local = []
        for p in wanted:
            if not -self.n_seq <= p < self.n_seq:
                if self.strict:
                    raise ValueError(f"{self.site}: position {p} out of range for a {self.n_seq}-token input")
                continue
            if p % self.n_seq >= self.offset:  # earlier positions sit in the KV cache, edited when computed
                local.append(p % self.n_seq - self.offset)
        return self.site.select(local[0] if isinstance(pos, int) and local else local)

    def align(self, ref: Tensor, fill: Tensor | None = None) -> Tensor:
        """`ref` ([rows, n_ref, ...], a whole-sequence run of this site) at this tensor's positions.

        Positions past the reference's end take `fill` (broadcastable), or are an error without one.
        Key axes (patterns, scores) are cut to the sequence's length.
        """
        axis, n_ref = self.site.pos_axis, ref.shape[self.site.pos_axis]
        if axis == 2:  # [batch, head, query, key]: the keys are the whole sequence so far
            if self.n_seq > n_ref:
                raise ValueError(
                    f"{self.site}: the reference has {n_ref} positions but this run has {self.n_seq}; "
                    "mean-ablating a pattern (or patching one) needs a reference at least as long as the run"
                )
            return ref[:, :, self.offset : self.n_seq, : self.n_seq]
        if self.offset == 0 and self.n_pos == n_ref:
            return ref
        have = ref.narrow(axis, min(self.offset, n_ref), max(0, min(self.n_seq, n_ref) - self.offset))
        missing = self.n_pos - have.shape[axis]
        if missing == 0:
            return have
        if fill is None:
            raise ValueError(
                f"{self.site}: the reference has {n_ref} positions, this run reaches position {self.n_seq - 1}"
            )
        shape = list(have.shape)
        shape[axis] = missing
        return torch.cat([have, fill.expand(shape).to(have)], dim=axis)


@dataclass(frozen=True)
class Bound:
    """An edit bound to one site (and its source run): the function, and whether it changes the base run."""

    fn: EditFn
    noop: Callable[[Tensor, At], bool] | None = None  # base activation -> True when the edit changes nothing


class Edit:
    """An intervention. `source` is the input whose run the edit reads (None: it reads none)."""

    source: Input | None = None
    checks_noop: bool = False  # whether the engine asks `Bound.noop` on the base run (needs its activation)

    def bind(self, site: Site, run: Run | None) -> Bound:
        raise NotImplementedError

    def __repr__(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, repr=False, eq=False)
class Custom(Edit):
    """A plain `fn(activation, at)`, used as an edit."""

    fn: EditFn

    def bind(self, site: Site, run: Run | None) -> Bound:
        return Bound(self.fn)


def as_edit(edit: Edit | EditFn) -> Edit:
    if isinstance(edit, Edit):
        return edit
    if callable(edit):
        return Custom(edit)
    raise TypeError(
        f"an edit is an Edit (zero(), patch_from(...), ...) or a fn(activation, at), got {edit!r}"
    )


@dataclass(frozen=True, repr=False, eq=False)
class _Zero(Edit):
    checks_noop = True

    def bind(self, site: Site, run: Run | None) -> Bound:
        def fn(act: Tensor, at: At) -> None:
            act[at.index] = 0.0

        return Bound(fn, lambda act, at: bool((act[at.index] == 0).all()))


@dataclass(frozen=True, repr=False, eq=False)
class _Scale(Edit):
    checks_noop = True

    factor: float

    def bind(self, site: Site, run: Run | None) -> Bound:
        def fn(act: Tensor, at: At) -> None:
            idx = at.index
            act[idx] = act[idx] * self.factor

        return Bound(fn, lambda act, at: self.factor == 1 or bool((act[at.index] == 0).all()))


@dataclass(frozen=True, repr=False, eq=False)
class _Add(Edit):
    vector: Tensor

    def bind(self, site: Site, run: Run | None) -> Bound:
        def fn(act: Tensor, at: At) -> None:
            idx = at.index
            act[idx] = act[idx] + self.vector.to(act)

        return Bound(fn)


@dataclass(frozen=True, repr=False, eq=False)
class _Noise(Edit):
    values: Tensor | None
    std: float
    seed: int

    def bind(self, site: Site, run: Run | None) -> Bound:
        gen = torch.Generator().manual_seed(self.seed)

        def fn(act: Tensor, at: At) -> None:
            idx = at.index
            part = act[idx]
            if self.values is None:
                noise = torch.randn(part.shape, generator=gen) * self.std
            else:
                noise = self.values
                if noise.shape[1:] != part.shape[1:] or noise.shape[0] not in (1, part.shape[0]):
                    raise ValueError(
                        f"{site}: noise of shape {tuple(noise.shape)} does not fit the edited slice "
                        f"{tuple(part.shape)}"
                    )
            act[idx] = part + noise.to(part)

        return Bound(fn)


@dataclass(frozen=True, repr=False, eq=False)
class _KnockOut(Edit):
    def bind(self, site: Site, run: Run | None) -> Bound:
        def fn(act: Tensor, at: At) -> None:
            act[at.index] = float("-inf")

        return Bound(fn)


def masked_mean(acts: Tensor, mask: Tensor | None, pos_dim: int, per_position: bool) -> Tensor:
    """Mean over the batch (and positions unless `per_position`), counting real tokens only, never padding."""
    shape = [1] * acts.ndim
    shape[0], shape[pos_dim] = acts.shape[0], acts.shape[pos_dim]
    weight = torch.ones(shape, dtype=acts.dtype, device=acts.device)
    if mask is not None:
        weight = mask.to(acts).view(shape)
    dims = (0,) if per_position else (0, pos_dim)
    return (acts * weight).sum(dims, keepdim=True) / weight.sum(dims, keepdim=True).clamp(min=1)


@dataclass(frozen=True, repr=False, eq=False)
class _Mean(Edit):
    checks_noop = True

    source: Input  # type: ignore[assignment]
    per_position: bool = True

    def bind(self, site: Site, run: Run | None) -> Bound:
        assert run is not None
        acts, dim = run.acts[site.hook_name], site.pos_axis
        # A pattern averaged over query positions is not a pattern: patterns are always per position.
        mean = masked_mean(acts, run.mask, dim, self.per_position or dim == 2)
        overall = masked_mean(acts, run.mask, dim, False)

        def fill(act: Tensor, at: At) -> Tensor:
            if mean.shape[dim] == 1:
                return mean.expand_as(act)
            # A run longer than the reference (generation) takes the mean over all its real positions.
            return at.align(mean, fill=overall).expand_as(act)

        def fn(act: Tensor, at: At) -> None:
            idx = at.index
            act[idx] = fill(act, at)[idx]

        return Bound(fn, lambda act, at: torch.equal(fill(act, at)[at.index], act[at.index]))


@dataclass(frozen=True, repr=False, eq=False)
class _Resample(Edit):
    source: Input  # type: ignore[assignment]
    seed: int = 0

    def bind(self, site: Site, run: Run | None) -> Bound:
        assert run is not None
        if run.mask is not None and not bool(run.mask.all()):
            raise ValueError(
                "resample ablation needs reference prompts of one token length (padding would be copied)"
            )
        acts, gen = run.acts[site.hook_name], torch.Generator().manual_seed(self.seed)

        def fn(act: Tensor, at: At) -> None:
            ref = at.align(acts) if at.offset or at.n_pos != acts.shape[site.pos_axis] else acts
            if ref.shape[1:] != act.shape[1:]:
                raise ValueError(
                    f"{site}: resampled reference activations have shape {tuple(ref.shape[1:])}, "
                    f"this run {tuple(act.shape[1:])}; the reference prompts need the same length"
                )
            pick = torch.randint(ref.shape[0], (act.shape[0],), generator=gen).to(ref.device)
            idx = at.index
            act[idx] = ref[pick][idx]

        return Bound(fn)


@dataclass(frozen=True, repr=False, eq=False)
class _Patch(Edit):
    checks_noop = True

    source: Input  # type: ignore[assignment]
    pos_map: Mapping[int, int] | None = field(default=None)

    def bind(self, site: Site, run: Run | None) -> Bound:
        assert run is not None
        src = run.acts[site.hook_name]  # [B or 1, n_src, ...]
        to_source = None if self.pos_map is None else {b: s for s, b in self.pos_map.items()}

        def aligned(act: Tensor, at: At) -> Tensor:
            if to_source is None:
                return at.align(src)
            out = act.clone()  # base positions with no source position keep their values
            axis, n_src = site.pos_axis, src.shape[site.pos_axis]
            pairs = [(b, to_source[p]) for b, p in enumerate(at.positions.tolist()) if p in to_source]
            if any(not 0 <= s < n_src for _, s in pairs):
                raise ValueError(f"{site}: pos_map points outside the {n_src}-token source")
            if pairs:
                b_idx, s_idx = (torch.tensor(x, device=act.device) for x in zip(*pairs, strict=True))
                out.index_copy_(
                    axis, b_idx, src.index_select(axis, s_idx).expand_as(out.index_select(axis, b_idx))
                )
            return out

        def fn(act: Tensor, at: At) -> None:
            idx = at.index
            act[idx] = aligned(act, at)[idx]

        return Bound(
            fn,
            lambda act, at: torch.equal(aligned(act, at)[at.index].expand_as(act[at.index]), act[at.index]),
        )


def zero() -> Edit:
    """Set the slice to 0. For a head's z this removes the head's whole output except b_O."""
    return _Zero()


def scale(factor: float) -> Edit:
    """Multiply the slice by `factor` (0 suppresses a neuron, 2 amplifies it)."""
    return _Scale(float(factor))


def add(vector: Tensor, coeff: float = 1.0) -> Edit:
    """Add coeff · vector to the slice (activation addition); `vector` broadcasts over the slice."""
    return _Add(coeff * vector.detach())


def add_noise(values: Tensor | None = None, *, std: float = 1.0, seed: int = 0) -> Edit:
    """Add fixed noise (`values`, [rows or 1, *slice shape]) or seeded Gaussian noise of std `std`."""
    return _Noise(None if values is None else values.detach(), float(std), seed)


def knock_out() -> Edit:
    """-inf into attention scores: the query then spreads its attention over the remaining keys."""
    return _KnockOut()


def mean_of(reference: Input, per_position: bool = True) -> Edit:
    """The mean over a reference batch, counting real tokens only (per position unless `per_position=False`)."""
    return _Mean(reference, per_position)


def resample_from(reference: Input, seed: int = 0) -> Edit:
    """Each example gets the activation of a random (seeded) example of the reference batch."""
    return _Resample(reference, seed)


def patch_from(source: Input, pos_map: Mapping[int, int] | None = None) -> Edit:
    """The source run's activation; `pos_map` {source position: base position} lines up prompts of other lengths."""
    return _Patch(source, None if pos_map is None else dict(pos_map))
