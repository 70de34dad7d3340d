"""Metrics on logits: logit difference, probability, log-probability, KL divergence, normalised recovery.

Each constructor returns a function `logits -> value`. The analyses call it with the logits of the
position(s) they read, `[batch, d_vocab]` by default (the last real token of every example), and a
metric may also receive `[batch, k, d_vocab]` when several read positions are asked for. Metrics average
over the batch unless built with `reduce=False`, in which case they return one value per example.

Target tokens are ids: one for the whole batch, or one per example (a [batch] list or tensor).
`model.to_single_token(" Paris")` turns text into an id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

Metric = Callable[[Tensor], Tensor]
Tokens = int | Sequence[int] | Tensor


def upcast(x: Tensor) -> Tensor:
    """At least float32 for softmax and friends (float64 stays float64, for precise tests)."""
    return x if x.dtype == torch.float64 else x.float()


def pick(logits: Float[Tensor, "batch *pos d_vocab"], tokens: Tokens) -> Tensor:
    """logits[..., token], with one token for all rows or one per example (first axis)."""
    ids = torch.as_tensor(tokens, device=logits.device).long()
    if ids.ndim == 0:
        return logits[..., ids]
    if ids.shape[0] != logits.shape[0]:
        raise ValueError(f"{ids.shape[0]} per-example tokens for logits with batch {logits.shape[0]}")
    index = ids.view(-1, *[1] * (logits.ndim - 1)).expand(*logits.shape[:-1], 1)
    return logits.gather(-1, index).squeeze(-1)


def _reduce(values: Tensor, reduce: bool) -> Tensor:
    return values.mean() if reduce else values


def logit_diff(correct: Tokens, incorrect: Tokens, reduce: bool = True) -> Metric:
    """logit[correct] − logit[incorrect]."""

    def metric(logits: Tensor) -> Tensor:
        return _reduce(pick(logits, correct) - pick(logits, incorrect), reduce)

    return metric


def log_prob(target: Tokens, reduce: bool = True) -> Metric:
    """log P(target), computed in float32 so small probabilities keep their precision."""

    def metric(logits: Tensor) -> Tensor:
        return _reduce(pick(upcast(logits).log_softmax(-1), target), reduce)

    return metric


def prob(target: Tokens, reduce: bool = True) -> Metric:
    """P(target)."""

    def metric(logits: Tensor) -> Tensor:
        return _reduce(pick(upcast(logits).softmax(-1), target), reduce)

    return metric


def kl_div(reference_logits: Tensor, reduce: bool = True) -> Metric:
    """KL(P_reference ‖ P): how far the logits moved from a reference run (e.g. the clean run's)."""
    ref = upcast(reference_logits.detach()).log_softmax(-1)

    def metric(logits: Tensor) -> Tensor:
        logp = upcast(logits).log_softmax(-1)
        kl = (ref.exp() * (ref - logp)).sum(-1)
        return _reduce(kl, reduce)

    return metric


def normalized_recovery(value: Tensor | float, clean: Tensor | float, corrupted: Tensor | float) -> Tensor:
    """(M − M_corrupted) / (M_clean − M_corrupted): 0 at the corrupted run, 1 at the clean run."""
    value, clean, corrupted = (torch.as_tensor(v, dtype=torch.float32) for v in (value, clean, corrupted))
    gap = clean - corrupted
    if bool((gap == 0).any()):
        raise ValueError("clean and corrupted metrics are equal; normalised recovery is undefined")
    return (value - corrupted) / gap


def normalized(metric: Metric, clean: Tensor | float, corrupted: Tensor | float) -> Metric:
    """Wrap a metric so it reports normalised recovery between the given clean and corrupted values."""
    normalized_recovery(0.0, clean, corrupted)  # fail now, not in the middle of a sweep

    def wrapped(logits: Tensor) -> Tensor:
        return normalized_recovery(metric(logits), clean, corrupted)

    return wrapped


def bind(metric, model):
    return metric.bind(model) if hasattr(metric, "bind") else metric
