"""Activation stores: where a dictionary's training activations come from.

The trainer reads only through `ActivationStore.batches`, so activations can come from memory (here, from a
model run over a corpus) or from shards on disk (a store over `interp.collect`'s output implements the same
two members). A batch is `(x, y)`: the activation read and the one to reconstruct (`y is x` for an SAE; the
output hook's activation for a transcoder). Only real tokens are stored: padding never reaches a dictionary.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm


class ActivationStore(Protocol):
    d_in: int
    d_out: int

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        """An endless stream of shuffled `(x [batch, d_in], y [batch, d_out])` batches."""
        ...


class InMemoryStore:
    """Activations held as two tensors [n_tokens, d]; shuffled afresh each epoch by the given generator."""

    def __init__(self, x: Tensor, y: Tensor | None = None) -> None:
        if x.ndim != 2 or (y is not None and (y.ndim != 2 or y.shape[0] != x.shape[0])):
            raise ValueError(f"a store holds [n_tokens, d] tensors; got x {tuple(x.shape)}, y {None if y is None else tuple(y.shape)}")  # fmt: skip
        self.x, self.y = x, (x if y is None else y)
        self.d_in, self.d_out = x.shape[1], self.y.shape[1]

    def __len__(self) -> int:
        return self.x.shape[0]

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        for idx in shuffled_batches(len(self), batch_size, generator):
            yield self.x[idx], self.y[idx]


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Endless index batches over n tokens: a fresh permutation each epoch, its last partial batch dropped.

    Every store draws through this, so one seed gives the same batches from memory or from disk.
    """
    if n < batch_size:
        raise ValueError(f"the store holds {n} tokens, fewer than one batch of {batch_size}")
    while True:
        order = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield order[i : i + batch_size]


Corpus = Sequence[str] | Tensor  # texts, or token ids [n_prompts, pos] (no padding)
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def stop_layer(model: Any, hooks: Sequence[str]) -> int | None:
    """The block a forward can stop at once every hook in `hooks` has run (None: it must run to the end, also
    whenever the caller has hooks attached, which may sit further down)."""
    layers = [_BLOCK.match(h) for h in hooks]
    attached = getattr(model, "explicit_hook_points", None)
    if not all(layers) or (attached is not None and list(attached())):
        return None
    stop = max(int(m.group(1)) for m in layers if m) + 1
    return stop if stop < model.cfg.n_layers else None


def prompt_batches(model: Any, corpus: Corpus, batch_prompts: int) -> Iterator[tuple[Tensor, Tensor]]:
    """(tokens, attention mask) for consecutive slices of the corpus."""
    for i in range(0, len(corpus), batch_prompts):
        chunk = corpus[i : i + batch_prompts]
        if isinstance(chunk, Tensor):
            yield chunk, torch.ones_like(chunk)
        else:
            yield model.to_tokens(list(chunk), return_attention_mask=True)


def collect_activations(
    model: Any,
    hook_name: str,
    corpus: Corpus,
    target_hook: str | None = None,
    batch_prompts: int = 64,
    skip_first: bool = True,
    flatten_heads: bool = False,
    progress: bool = True,
) -> InMemoryStore:
    """Run `model` over `corpus` in batches and keep the activations at `hook_name` (and `target_hook`) for
    every real token; `skip_first` drops position 0 (BOS), whose activations are outliers."""
    names = [hook_name] + ([target_hook] if target_hook and target_hook != hook_name else [])
    xs: list[Tensor] = []
    ys: list[Tensor] = []
    for tokens, mask in tqdm(
        prompt_batches(model, corpus, batch_prompts), desc="activations", disable=not progress
    ):
        _, cache = model.run_with_cache(
            tokens, attention_mask=mask, names_filter=names, stop_at_layer=stop_layer(model, names)
        )
        keep = mask.bool().clone()
        if skip_first:
            keep[:, 0] = False
        for name, out in zip(names, (xs, ys), strict=False):
            act = cache[name]
            act = act.flatten(-2) if flatten_heads else act
            out.append(act[keep].float())
    x = torch.cat(xs)
    return InMemoryStore(x, torch.cat(ys) if ys else None)
