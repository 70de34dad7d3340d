"""The batched-intervention engine shared by patching, ablation, tracing, knockout and neuron edits.

One sweep is many *cells*, each an edited copy of the same base run. Cells are stacked along the batch
axis (cell i owns rows i*B .. (i+1)*B of a batch of B examples), so one forward evaluates many of them.
Each forward starts at the earliest block a cell edits, from the base run's cached resid_pre there, and
stops before the unembedding: only the positions the metric reads go through ln_final and W_U.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.analysis.metrics import upcast
from interp.hooks import HookPoint
from interp.transformer import HookedTransformer

Input = str | Sequence[str] | Tensor
ReadPos = int | Sequence[int] | None  # None: each example's last real token
TokenLike = int | str | Sequence[int] | Tensor
Metric = Callable[[Tensor], Tensor]  # logits [batch, d_vocab] (or [batch, k, d_vocab]) -> scalar or [batch]
Edit = Callable[[Tensor], None]  # mutates one cell's rows [B, ...] of an activation in place


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


def check_aligned(a: Prompt, b: Prompt, names: tuple[str, str] = ("clean", "corrupted")) -> None:
    """Patching copies activations position by position, so both runs need the same token layout."""
    if a.tokens.shape[1] != b.tokens.shape[1]:
        raise ValueError(
            f"{names[0]} and {names[1]} prompts have different token lengths ({a.n_pos} vs {b.n_pos}); "
            "activations can only be swapped between runs whose positions line up"
        )
    if a.tokens.shape[0] != b.tokens.shape[0]:
        raise ValueError(f"{names[0]} and {names[1]} have different batch sizes ({a.batch} vs {b.batch})")
    same_mask = (a.mask is None and b.mask is None) or (
        a.mask is not None and b.mask is not None and torch.equal(a.mask, b.mask)
    )
    if not same_mask:
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
        raise ValueError(f"got {ids.numel()} target tokens for a batch of {batch}")
    if ids.min() < 0 or ids.max() >= model.cfg.d_vocab:
        raise ValueError(f"token ids must lie in [0, {model.cfg.d_vocab}), got {ids.tolist()}")
    return ids.to(model.W_E.device)


def read_index(prompt: Prompt, read_pos: ReadPos) -> Tensor | list[int]:
    """Positions the metric reads: a [batch] tensor (one per example) or a list (several for all)."""
    if read_pos is None:
        return prompt.last_pos()
    if isinstance(read_pos, int):
        if not -prompt.n_pos <= read_pos < prompt.n_pos:
            raise ValueError(f"read_pos {read_pos} out of range for a {prompt.n_pos}-token input")
        return torch.full((prompt.batch,), read_pos % prompt.n_pos, device=prompt.tokens.device)
    return [p % prompt.n_pos for p in read_pos]


def unembed_at(
    model: HookedTransformer, resid: Float[Tensor, "batch pos d_model"], index: Tensor | list[int]
) -> Tensor:
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


@dataclass
class Forward:
    """A plain forward that also keeps selected activations; logits only at the read positions."""

    logits: Tensor
    cache: dict[str, Tensor] = field(default_factory=dict)


def cached_run(
    model: HookedTransformer,
    prompt: Prompt,
    names: Sequence[str],
    index: Tensor | list[int],
    hooks: Sequence[tuple[str, Callable]] = (),
) -> Forward:
    """One no-grad forward that caches `names` (owned copies, not views) under optional extra hooks."""
    store: dict[str, Tensor] = {}

    def save(x: Tensor, hook: HookPoint) -> None:
        store[hook.name] = x.detach().clone()

    with torch.no_grad(), model.hooks([*hooks, *[(n, save) for n in dict.fromkeys(names)]]):
        resid = model(prompt.tokens, attention_mask=prompt.mask, stop_at_layer=model.cfg.n_layers)
        logits = unembed_at(model, resid, index)
    return Forward(logits, store)


@dataclass(frozen=True)
class CellRun:
    """One edited copy of the base run: the block to start at and the edits, by hook name."""

    start_layer: int
    edits: Mapping[str, Sequence[Edit]]


def run_cells(
    model: HookedTransformer,
    prompt: Prompt,
    resid_pre: Callable[[int], Tensor],
    cells: Sequence[CellRun],
    evaluate: Callable[[Tensor], Tensor],
    index: Tensor | list[int],
    *,
    max_rows: int = 256,
    progress: bool | None = None,
    desc: str = "cells",
) -> tuple[list[Tensor], int]:
    """Evaluate every cell; returns `evaluate(logits of the cell's rows)` per cell and the forwards run.

    `resid_pre(layer)` gives the base run's residual entering `layer` ([B, pos, d_model]). Cells are run in
    order of start layer, as many per forward as fit in `max_rows` rows.
    """
    B = prompt.batch
    per_chunk = max(1, max_rows // B)
    order = sorted(range(len(cells)), key=lambda i: cells[i].start_layer)
    chunks: list[list[int]] = []
    for _, group in groupby(order, key=lambda i: cells[i].start_layer):
        ids = list(group)
        chunks += [ids[k : k + per_chunk] for k in range(0, len(ids), per_chunk)]
    results: list[Tensor | None] = [None] * len(cells)
    show = progress if progress is not None else len(chunks) >= 8
    for chunk in tqdm(chunks, desc=desc, disable=not show, leave=False):
        layer = cells[chunk[0]].start_layer
        n = len(chunk)
        plan: dict[str, list[tuple[int, Edit]]] = {}
        for slot, i in enumerate(chunk):
            for name, edits in cells[i].edits.items():
                plan.setdefault(name, []).extend((slot, e) for e in edits)

        def apply(act: Tensor, hook: HookPoint, plan: dict = plan) -> Tensor:
            act = act.clone()  # never edit a tensor another module may still hold
            for slot, edit in plan[hook.name]:
                edit(act[slot * B : (slot + 1) * B])
            return act

        x = resid_pre(layer).repeat(n, 1, 1)
        mask = None if prompt.mask is None else prompt.mask.repeat(n, 1)
        rows_index = index.repeat(n) if isinstance(index, Tensor) else index
        with torch.no_grad(), model.hooks([(name, apply) for name in plan]):
            resid = model(x, attention_mask=mask, start_at_layer=layer, stop_at_layer=model.cfg.n_layers)
            logits = unembed_at(model, resid, rows_index)
            for slot, i in enumerate(chunk):
                results[i] = evaluate(logits[slot * B : (slot + 1) * B])
    return results, len(chunks)  # type: ignore[return-value]


def edits_by_hook(pairs: Sequence[tuple[str, Edit]]) -> dict[str, list[Edit]]:
    out: dict[str, list[Edit]] = {}
    for name, edit in pairs:
        out.setdefault(name, []).append(edit)
    return out


def layer_window(layer: int, window: int, n_layers: int) -> range:
    """The `window` layers centred on `layer`, clipped to the model (ROME's and Geva et al.'s convention)."""
    return range(max(0, layer - window // 2), min(n_layers, layer - (-window // 2)))


def prob_change(
    model: HookedTransformer,
    base: Prompt,
    cells: Sequence[CellRun],
    rows: list[dict],
    index: Tensor | list[int],
    answer: TokenLike | None,
    *,
    desc: str,
    max_rows: int,
    progress: bool | None,
) -> tuple[pd.DataFrame, Tensor]:
    """P(answer) under each edit cell, as Geva et al. report it: p_base, p_new, (p_new − p_base) / p_base.

    `answer` defaults to the unedited run's top prediction. Returns one row per cell (`rows` plus those
    columns; attrs n_forward) and the answer ids.
    """
    starts = {c.start_layer for c in cells}
    run = cached_run(model, base, [f"blocks.{s}.hook_resid_pre" for s in starts], index)
    ids = run.logits.argmax(-1) if answer is None else token_ids(model, answer, base.batch)
    rows_idx = torch.arange(base.batch, device=ids.device)
    p_base = upcast(run.logits).softmax(-1)[rows_idx, ids]

    def evaluate(logits: Tensor) -> Tensor:
        p_new = upcast(logits).softmax(-1)[rows_idx, ids]
        return torch.stack([p_new.mean(), (p_new / p_base - 1).mean()])

    values, n_forward = run_cells(
        model,
        base,
        lambda layer: run.cache[f"blocks.{layer}.hook_resid_pre"],
        cells,
        evaluate,
        index,
        max_rows=max_rows,
        progress=progress,
        desc=desc,
    )
    df = pd.DataFrame(rows)
    df["p_base"] = float(p_base.mean())
    df["p_new"] = [float(v[0]) for v in values]
    df["relative_change"] = [float(v[1]) for v in values]
    df.attrs.update(n_forward=n_forward + 1)
    return df, ids
