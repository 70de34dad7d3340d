"""The sweep engine: every analysis that edits a run is cells of (site, edit) pairs plus one call to `sweep`.

One sweep is many *cells*, each an edited copy of the same base run. The engine owns:
- the base run, which caches what the cells need (the residual at their start layers, the edited
  activations) and, stacked in the same forward when the prompts line up, the runs the edits read;
- stacking cells along the batch axis (cell i owns rows i*B .. (i+1)*B), as many per forward as fit;
- starting each forward at the first block a cell edits, from the base run's cached resid_pre there;
- skipping cells whose edits leave the base run unchanged (they get the base value without a forward);
- the progress bar;
- the readout: the logits at the read positions only (ln_final and W_U on a handful of positions), or any
  activation (`Activation(site)`, e.g. for a probe), optionally with gradients on;
- a non-finite metric value: it raises `NonFiniteError`, naming the first activation that was not finite.

Edits address absolute positions: the one adapter (`edit_hooks`) reads the forward's `SequenceInfo`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analysis.edits import At, Bound, Edit, EditFn, as_edit
from interp.analysis.metrics import bind, upcast
from interp.analysis.specs import Embed, ResidPre, Site
from interp.hooks import HookPoint, HookSpec
from interp.layers.sequence_info import cached_positions
from interp.transformer import HookedTransformer

Input = str | Sequence[str] | Tensor
ReadPos = int | Sequence[int] | None  # None: each example's last real token
TokenLike = int | str | Sequence[int] | Tensor
Metric = Callable[[Tensor], Tensor]  # readout (logits [batch, d_vocab] by default) -> scalar or [batch]
Pair = tuple[Site, "Edit | EditFn"]  # one edit at one site; a cell is a sequence of pairs


@dataclass(frozen=True)
class FromBase:
    """A metric that needs the base run first: `make(base readout) -> metric` (e.g. P(its top token))."""

    make: Callable[[Tensor], Metric]


class NonFiniteError(ValueError):
    """A metric or readout came out NaN or infinite; the message says where it first became non-finite."""


@dataclass(frozen=True)
class Prompt:
    """Token ids with their padding mask (None when nothing is padded)."""

    tokens: Tensor  # [batch, pos]
    mask: Tensor | None  # [batch, pos], 1 = real token

    @property
    def batch(self) -> int:
        return self.tokens.shape[0]

    @property
    def n_pos(self) -> int:
        return self.tokens.shape[1]

    def last_pos(self) -> Tensor:
        """Index [batch] of each example's last real token (left or right padding)."""
        if self.mask is None:
            return torch.full((self.batch,), self.n_pos - 1, device=self.tokens.device)
        idx = torch.arange(self.n_pos, device=self.tokens.device)
        return (self.mask.bool() * idx).amax(-1)

    def repeat(self, n: int) -> Prompt:
        return Prompt(self.tokens.repeat(n, 1), None if self.mask is None else self.mask.repeat(n, 1))

    def lines_up_with(self, other: Prompt) -> bool:
        if self.tokens.shape != other.tokens.shape:
            return False
        if self.mask is None or other.mask is None:
            return self.mask is None and other.mask is None
        return torch.equal(self.mask, other.mask)


def prepare(model: HookedTransformer, input: Input | Prompt, prepend_bos: bool | None = None) -> Prompt:
    if isinstance(input, Prompt):
        return input
    if isinstance(input, Tensor):
        tokens = input[None] if input.ndim == 1 else input
        if tokens.ndim != 2 or tokens.is_floating_point():
            raise ValueError(f"token input must be an integer tensor [batch, pos], got {tuple(input.shape)}")
        return Prompt(tokens.to(model.W_E.device).long(), None)
    tokens, mask = model.to_tokens(input, prepend_bos=prepend_bos, return_attention_mask=True)
    return Prompt(tokens, None if bool(mask.all()) else mask)


def one_prompt(
    model: HookedTransformer, prompt: Input, pos: int, caller: str, pos_name: str
) -> tuple[Tensor, int]:
    """The tokens [1, n] of a single prompt and `pos` made non-negative (negative counts from the end).

    `caller` ("explain_head explains") and `pos_name` ("dest") word the errors for a batch or a bad position.
    """
    tokens = prepare(model, prompt).tokens
    if tokens.shape[0] != 1:
        raise ValueError(f"{caller} one prompt, got a batch of {tokens.shape[0]}")
    n = tokens.shape[1]
    if not -n <= pos < n:
        raise ValueError(f"{pos_name} {pos} out of range for a {n}-token prompt")
    return tokens, pos % n


def check_aligned(a: Prompt, b: Prompt, names: tuple[str, str] = ("clean", "corrupted")) -> None:
    """Patching position by position needs both runs to have the same token layout."""
    if a.n_pos != b.n_pos:
        raise ValueError(
            f"{names[0]} and {names[1]} prompts have different token lengths ({a.n_pos} vs {b.n_pos}); "
            "activations can only be swapped between runs whose positions line up"
        )
    if a.batch != b.batch:
        raise ValueError(f"{names[0]} and {names[1]} have different batch sizes ({a.batch} vs {b.batch})")
    if not a.lines_up_with(b):
        raise ValueError(f"{names[0]} and {names[1]} prompts are padded differently; their lengths differ")


def token_ids(model: HookedTransformer, tokens: TokenLike, batch: int) -> Tensor:
    """One token id per example, [batch], from an id, a single-token string, or a per-example list."""
    if isinstance(tokens, str):
        ids = torch.tensor([model.to_single_token(tokens)])
    elif isinstance(tokens, Sequence) and tokens and isinstance(tokens[0], str):
        ids = torch.tensor([model.to_single_token(t) for t in tokens])  # type: ignore[arg-type]
    else:
        ids = torch.as_tensor(tokens).long().flatten()
    if ids.numel() == 1:
        ids = ids.expand(batch)
    if ids.numel() != batch:
        raise ValueError(f"got {ids.numel()} answer tokens for a batch of {batch}")
    if ids.min() < 0 or ids.max() >= model.cfg.d_vocab:
        raise ValueError(f"token ids must lie in [0, {model.cfg.d_vocab}), got {ids.tolist()}")
    return ids.to(model.W_E.device)


def read_index(prompt: Prompt, read_pos: ReadPos) -> Tensor | list[int]:
    """Positions read: a [batch] tensor (one per example) or a list (several for every example)."""
    if read_pos is None:
        return prompt.last_pos()
    if isinstance(read_pos, int):
        if not -prompt.n_pos <= read_pos < prompt.n_pos:
            raise ValueError(f"read_pos {read_pos} out of range for a {prompt.n_pos}-token input")
        return torch.full((prompt.batch,), read_pos % prompt.n_pos, device=prompt.tokens.device)
    bad = [p for p in read_pos if not -prompt.n_pos <= p < prompt.n_pos]
    if bad:
        raise ValueError(f"read_pos {bad} out of range for a {prompt.n_pos}-token input")
    return [p % prompt.n_pos for p in read_pos]


def unembed_at(model: HookedTransformer, resid: Tensor, index: Tensor | list[int]) -> Tensor:
    """Logits at the read positions only: [batch, d_vocab] for a per-example index, else [batch, k, d_vocab].

    Applying ln_final and W_U to a handful of positions instead of all of them is the single largest saving
    on models with big vocabularies (for GPT-2 small, W_U is ~40% of a forward's FLOPs per position).
    """
    if isinstance(index, Tensor):
        resid = resid[torch.arange(resid.shape[0], device=resid.device), index]
    else:
        resid = resid[:, index]
    return model.unembed(model.ln_final(resid))


def scalar(value: Tensor) -> float:
    """A metric's value as a float: scalars as they are, per-example values averaged."""
    return float(torch.as_tensor(value).detach().float().mean())


def layer_window(layer: int, window: int, n_layers: int) -> range:
    """The `window` layers [layer − window//2, layer + window − window//2), clipped to the model.

    ROME's and Geva et al.'s convention: an odd window is centred on `layer`; an even one has one layer
    more below it than above it (window 2 around layer 1 is layers 0..1).
    """
    return range(max(0, layer - window // 2), min(n_layers, layer - window // 2 + window))


# --- readouts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Logits:
    """Read the logits at `read_pos` (default: each example's last real token): [batch, d_vocab]."""

    read_pos: ReadPos = None
    names: tuple[str, ...] = ()

    def stop(self, model: HookedTransformer) -> int:
        return model.cfg.n_layers

    def read(self, model: HookedTransformer, resid: Tensor, acts: dict, prompt: Prompt) -> Tensor:
        return unembed_at(model, resid, read_index(prompt, self.read_pos))

    def describe(self, prompt: Prompt) -> str:
        index = read_index(prompt, self.read_pos)
        k = "[batch, d_vocab]" if isinstance(index, Tensor) else f"[batch, {len(index)}, d_vocab]"
        where = "each example's last real token" if self.read_pos is None else f"position(s) {self.read_pos}"
        return f"the logits at {where}, {k}"


@dataclass(frozen=True)
class Activation:
    """Read the site's slice of an activation (after any edit there), e.g. for a probe's margin."""

    site: Site

    @property
    def names(self) -> tuple[str, ...]:
        return (self.site.hook_name,)

    def stop(self, model: HookedTransformer) -> int:
        return model.cfg.n_layers if self.site.start is None else self.site.start + 1

    def read(self, model: HookedTransformer, resid: Tensor, acts: dict, prompt: Prompt) -> Tensor:
        return acts[self.site.hook_name][self.site.selector]

    def describe(self, prompt: Prompt) -> str:
        return f"{self.site}'s slice of {self.site.hook_name}"


@dataclass(frozen=True)
class Until:
    """Run the blocks before `layer` only (None: all of them) and read the residual there, every position."""

    layer: int | None = None
    names: tuple[str, ...] = ()

    def stop(self, model: HookedTransformer) -> int:
        return model.cfg.n_layers if self.layer is None else self.layer

    def read(self, model: HookedTransformer, resid: Tensor, acts: dict, prompt: Prompt) -> Tensor:
        return resid

    def describe(self, prompt: Prompt) -> str:
        return f"the residual entering block {self.layer}" if self.layer is not None else "the final residual"


Readout = Logits | Activation | Until


def call_metric(metric: Metric, value: Tensor, readout: Readout, prompt: Prompt) -> Tensor:
    """metric(value); a metric written for another shape (TL's logits[:, -1]) gets an error that says which."""
    try:
        return metric(value)
    except IndexError as e:
        raise ValueError(
            f"the metric raised IndexError ({e}) on {readout.describe(prompt)}, shape {tuple(value.shape)}. "
            "interp's analyses pass the metric only the read positions; a TransformerLens-style metric "
            "that indexes logits[:, -1] expects [batch, pos, d_vocab]: drop the position index"
        ) from e


# --- runs, captures and the one edit adapter ---------------------------------------------------------


def capture(names: Sequence[str], store: dict[str, Tensor], *, detach: bool = True) -> list[HookSpec]:
    """Hooks that keep activations in `store` by hook name: owned copies, or the graph's own tensors."""

    def save(x: Tensor, hook: HookPoint) -> None:
        store[hook.name] = x.detach().clone() if detach else x

    return [(n, save) for n in dict.fromkeys(names)]


Plan = dict[str, list[tuple[slice, Site, EditFn]]]  # hook name -> (batch rows, site, edit) in order


def edit_hooks(plan: Plan, strict: bool = True) -> list[HookSpec]:
    """The one adapter from edits to hooks: each edit gets its rows and where they are (`At`)."""

    def apply(act: Tensor, hook: HookPoint) -> Tensor:
        act = act.clone()  # never edit a tensor another module may still hold
        offset = cached_positions()  # positions already in a KV cache: this tensor starts there
        for rows, site, fn in plan[hook.name]:
            part = act[rows]
            out = fn(part, At(site, offset, part.shape[site.pos_axis], strict))
            if out is not None and out is not part:
                act[rows] = out
        return act

    return [(name, apply) for name in plan]


@dataclass
class Run:
    """One forward's cached activations (owned copies), its padding mask and its readout."""

    acts: dict[str, Tensor]
    mask: Tensor | None
    readout: Tensor | None = None


def forward(
    model: HookedTransformer,
    x: Tensor,
    prompt: Prompt,
    readout: Readout,
    *,
    start: int | None = None,
    plan: Plan | None = None,
    keep: Sequence[str] = (),
    hooks: Sequence[HookSpec] = (),
    grad: bool = False,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One forward from tokens (start None) or from the residual entering block `start`, edited by `plan`.

    Returns the readout and the activations named in `keep` (the graph's own tensors when `grad`).
    """
    store: dict[str, Tensor] = {}
    specs = [*edit_hooks(plan or {}), *hooks, *capture([*keep, *readout.names], store, detach=not grad)]
    with torch.set_grad_enabled(grad), model.hooks(specs):
        resid = model(x, attention_mask=prompt.mask, start_at_layer=start, stop_at_layer=readout.stop(model))
        return readout.read(model, resid, store, prompt), store


def reference_runs(
    model: HookedTransformer,
    prompts: Sequence[Prompt],
    names: Sequence[str],
    readout: Readout,
    hooks: Sequence[HookSpec] = (),
) -> list[Run]:
    """One no-grad forward of the prompts stacked on the batch (bigger matmuls, one pass over the weights)."""
    both = prompts[0] if len(prompts) == 1 else _stack(prompts)
    value, store = forward(model, both.tokens, both, readout, keep=names, hooks=hooks)
    runs, at = [], 0
    for p in prompts:
        rows = slice(at, at + p.batch)
        runs.append(Run({n: store[n][rows] for n in names}, p.mask, value[rows]))
        at += p.batch
    return runs


def _stack(prompts: Sequence[Prompt]) -> Prompt:
    masks = [p.mask for p in prompts]
    mask = None if masks[0] is None else torch.cat(masks)  # type: ignore[arg-type]
    return Prompt(torch.cat([p.tokens for p in prompts]), mask)


def bind_pairs(
    model: HookedTransformer, cells: Sequence[Sequence[Pair]], n_pos: int | None
) -> tuple[list[list[tuple[Site, Edit]]], dict[int, tuple[Prompt, list[str]]]]:
    """Sites resolved and validated, edits normalised; and the sources they read: {id: (prompt, hooks)}."""
    out, sources = [], {}
    for cell in cells:
        pairs = [(site.at(model), as_edit(edit)) for site, edit in cell]
        if not pairs:
            raise ValueError("a cell with no edits")
        for site, edit in pairs:
            site.validate(model, n_pos)
            if edit.source is not None:
                key = id(edit.source)
                if key not in sources:
                    sources[key] = (prepare(model, edit.source), [])
                sources[key][1].append(site.hook_name)
        out.append(pairs)
    return out, sources


def site_scopes(model: HookedTransformer, sites: Iterable[Site]) -> ExitStack:
    """Open what the sites need to exist (one splice per dictionary for `Latent` sites), as one stack."""
    stack = ExitStack()
    seen: set[Any] = set()
    try:
        for site in sites:
            key = site.scope_key()
            if key is not None and key not in seen:
                seen.add(key)
                stack.enter_context(site.scope(model))
    except BaseException:
        stack.close()
        raise
    return stack


@contextmanager
def edited(
    model: HookedTransformer, pairs: Sequence[Pair], *, strict: bool = True
) -> Iterator[HookedTransformer]:
    """Every forward inside the block runs with the edits; the hooks go when the block ends.

    With `strict=False`, positions a (shorter) forward does not have are skipped instead of an error.
    """
    with site_scopes(model, [s for s, _ in pairs]):
        yield from _edited(model, pairs, strict)


def _edited(model: HookedTransformer, pairs: Sequence[Pair], strict: bool) -> Iterator[HookedTransformer]:
    (cell,), sources = bind_pairs(model, [pairs], None)
    last = max((-1 if s.start is None else s.start for s, _ in cell), default=-1)
    runs = {k: reference_runs(model, [p], names, Until(last + 1))[0] for k, (p, names) in sources.items()}
    plan: Plan = {}
    for site, edit in cell:
        bound = edit.bind(site, runs.get(id(edit.source)))
        plan.setdefault(site.hook_name, []).append((slice(None), site, bound.fn))
    with model.hooks(edit_hooks(plan, strict)):
        yield model


# --- the sweep --------------------------------------------------------------------------------------


@dataclass
class Sweep:
    """What `sweep` returns: the metric per cell and on the base run, the readouts of the runs edits read."""

    values: list[Tensor]
    base: Tensor
    base_readout: Tensor
    sources: dict[int, Tensor] = field(default_factory=dict)  # id(edit.source) -> that run's readout
    n_forward: int = 0
    skipped: list[bool] = field(default_factory=list)


def sweep(
    model: HookedTransformer,
    base: Prompt,
    cells: Sequence[Sequence[Pair]],
    metric: Metric | FromBase | None = None,
    *,
    readout: Readout | None = None,
    base_edits: Sequence[Pair] = (),
    max_rows: int = 256,
    progress: bool | None = None,
    desc: str = "cells",
) -> Sweep:
    """`metric(readout)` of the base run under each cell's edits; see the module docstring.

    The metric receives the readout of the cell's rows: by default `Logits()`, the logits at each example's
    last real token, [batch, d_vocab]; `Activation(site)` gives that site's slice. `FromBase(make)` builds
    the metric from the base run's readout first. `base_edits` apply to the base run itself (e.g. the
    corruption of causal tracing), so every cell sees them.
    """
    readout = readout or Logits()
    sites = [s for cell in [*cells, base_edits] for s, _ in cell]
    sites += [readout.site] if isinstance(readout, Activation) else []
    with site_scopes(model, sites):
        return _sweep(model, base, cells, metric, readout, base_edits, max_rows, progress, desc)


def _sweep(
    model: HookedTransformer,
    base: Prompt,
    cells: Sequence[Sequence[Pair]],
    metric: Metric | FromBase | None,
    readout: Readout,
    base_edits: Sequence[Pair],
    max_rows: int,
    progress: bool | None,
    desc: str,
) -> Sweep:
    bound_cells, sources = bind_pairs(model, cells, base.n_pos)
    (base_cell,), _ = bind_pairs(model, [base_edits], base.n_pos) if base_edits else ([[]], {})
    base_plan = _plan([(s, e.bind(s, None)) for s, e in base_cell], slice(None))
    starts = [min(-1 if s.start is None else s.start for s, _ in cell) for cell in bound_cells]
    names = [ResidPre(layer).hook_name for layer in set(starts) if layer >= 0]
    names += [s.hook_name for cell in bound_cells for s, e in cell if e.checks_noop]
    # Sources that line up with the base run ride in its forward; the others get one of their own.
    stacked = [k for k, (p, _) in sources.items() if p.lines_up_with(base) and not base_plan]
    first = reference_runs(
        model,
        [base, *(sources[k][0] for k in stacked)],
        [*names, *(n for k in stacked for n in sources[k][1])],
        readout,
        hooks=edit_hooks(base_plan),
    )
    base_run, runs = first[0], dict(zip(stacked, first[1:], strict=True))
    for k, (p, hook_names) in sources.items():
        if k not in runs:
            runs[k] = reference_runs(model, [p], hook_names, readout)[0]
    if isinstance(metric, FromBase):
        metric = metric.make(base_run.readout)
    metric = (lambda x: x) if metric is None else bind(metric, model)
    check = _Checker(model, base, readout, metric)
    m_base = check(
        base_run.readout, lambda hooks: _rerun(model, base, readout, base_plan, hooks), "the base run"
    )
    bound = [[(s, e.bind(s, runs.get(id(e.source)))) for s, e in cell] for cell in bound_cells]
    skipped = [all(_noop(b, s, base_run) for s, b in cell) for cell in bound]
    values: list[Tensor] = [m_base] * len(cells)
    B, per_chunk = base.batch, max(1, max_rows // base.batch)
    live = sorted((i for i, skip in enumerate(skipped) if not skip), key=lambda i: starts[i])
    chunks: list[list[int]] = []
    for _, group in groupby(live, key=lambda i: starts[i]):
        ids = list(group)
        chunks += [ids[k : k + per_chunk] for k in range(0, len(ids), per_chunk)]
    show = progress if progress is not None else len(chunks) >= 8
    for chunk in tqdm(chunks, desc=desc, disable=not show, leave=False):
        start, n = starts[chunk[0]], len(chunk)
        # A cell that edits the embeddings runs from the tokens, so the base run's own edits run again too.
        own = [_plan(bound[i], slice(None), base_plan if start < 0 else {}) for i in chunk]
        plan: Plan = {}
        for slot, cell_plan in enumerate(own):
            rows = slice(slot * B, (slot + 1) * B)
            for name, edits in cell_plan.items():
                plan.setdefault(name, []).extend((rows, site, fn) for _, site, fn in edits)
        x = base.tokens if start < 0 else base_run.acts[ResidPre(start).hook_name]
        out, _ = forward(
            model,
            _repeat(x, n),
            base.repeat(n),
            readout,
            start=start if start >= 0 else None,
            plan=plan,
        )
        for slot, i in enumerate(chunk):

            def redo(hooks: Sequence[HookSpec], p: Plan = own[slot], start: int = start) -> Tensor:
                return _rerun(model, base, readout, p, hooks, start, base_run)

            def where(cell: list = bound_cells[i]) -> str:
                return "the cell " + " + ".join(f"{s} ({e!r})" for s, e in cell)

            values[i] = check(out[slot * B : (slot + 1) * B], redo, where)
    readouts = {k: r.readout for k, r in runs.items()}
    return Sweep(
        values, m_base, base_run.readout, readouts, len(chunks) + 1 + len(sources) - len(stacked), skipped
    )


def _plan(pairs: Sequence[tuple[Site, Bound]], rows: slice, plan: Plan | None = None) -> Plan:
    out: Plan = {k: list(v) for k, v in (plan or {}).items()}
    for site, b in pairs:
        out.setdefault(site.hook_name, []).append((rows, site, b.fn))
    return out


def _repeat(x: Tensor, n: int) -> Tensor:
    return x.repeat(n, *[1] * (x.ndim - 1))


def _noop(bound: Bound, site: Site, base_run: Run) -> bool:
    if bound.noop is None or site.hook_name not in base_run.acts:
        return False
    act = base_run.acts[site.hook_name]
    return bound.noop(act, At(site, 0, act.shape[site.pos_axis]))


def _rerun(
    model: HookedTransformer,
    base: Prompt,
    readout: Readout,
    plan: Plan,
    hooks: Sequence[HookSpec],
    start: int = -1,
    base_run: Run | None = None,
) -> Tensor:
    if start < 0 or base_run is None:
        return forward(model, base.tokens, base, readout, plan=plan, hooks=hooks)[0]
    x = base_run.acts[ResidPre(start).hook_name]
    return forward(model, x, base, readout, start=start, plan=plan, hooks=hooks)[0]


@dataclass
class _Checker:
    """metric(readout) with a check: a NaN or inf re-runs the forward with probes to say where it began."""

    model: HookedTransformer
    prompt: Prompt
    readout: Readout
    metric: Metric

    def __call__(
        self, value: Tensor, rerun: Callable[[Sequence[HookSpec]], Tensor], where: str | Callable[[], str]
    ) -> Tensor:
        out = torch.as_tensor(call_metric(self.metric, value, self.readout, self.prompt))
        if bool(torch.isfinite(out.detach()).all()):
            return out
        seen: list[str] = []

        def probe(x: Tensor, hook: HookPoint) -> None:
            # Masked attention scores are -inf by design; only a NaN or +inf there is news.
            bad = x.isnan() | (x == float("inf")) if hook.name.endswith("hook_attn_scores") else ~x.isfinite()
            if not seen and bool(bad.any()):
                seen.append(hook.name)

        # Every point the model computes anyway (TL's per-head input copies only exist while hooked).
        names = set(self.model.default_cache_names(self.model.hook_names()))
        with torch.no_grad():
            rerun([(lambda name: name in names, probe)])
        if seen:
            found = f"the first non-finite activation is {seen[0]} (after any edit there)"
        elif not bool(torch.isfinite(value.detach()).all()):
            found = (
                f"every activation is finite, but the readout ({self.readout.describe(self.prompt)}) is not"
            )
        else:
            found = "every activation and the readout are finite: the metric itself produced it"
        raise NonFiniteError(
            f"the metric returned {out.detach().flatten()[:4].tolist()} for {where}; {found}"
        )


__all__ = ["Activation", "Embed", "Logits", "NonFiniteError", "Prompt", "edited", "sweep"]


def prob_change(
    model: HookedTransformer,
    base: Prompt,
    cells: Sequence[Sequence[Pair]],
    answer: TokenLike | None,
    read_pos: ReadPos,
    **kwargs: object,
) -> tuple[Sweep, Tensor, Tensor]:
    """P(answer) under each cell, as Geva et al. report it: per cell [p_new, (p_new − p_base) / p_base].

    `answer` defaults to the unedited run's top prediction. Returns the sweep, the answer ids and p_base.
    """
    got: dict[str, Tensor] = {}

    def make(logits: Tensor) -> Metric:
        ids = logits.argmax(-1) if answer is None else token_ids(model, answer, base.batch)
        rows = torch.arange(base.batch, device=ids.device)
        got["ids"], got["p_base"] = ids, upcast(logits).softmax(-1)[rows, ids]

        def metric(logits: Tensor) -> Tensor:
            p_new = upcast(logits).softmax(-1)[rows, ids]
            return torch.stack([p_new.mean(), (p_new / got["p_base"] - 1).mean()])

        return metric

    run = sweep(model, base, cells, FromBase(make), readout=Logits(read_pos), **kwargs)  # type: ignore[arg-type]
    return run, got["ids"], got["p_base"]
