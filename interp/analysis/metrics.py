"""Metrics on logits: logit difference, probability, log-probability, KL divergence, normalised recovery.

Each constructor returns a function `logits -> value`. The analyses call it with the logits of the
position(s) they read, `[batch, d_vocab]` by default (the last real token of every example), and a
metric may also receive `[batch, k, d_vocab]` when several read positions are asked for. Metrics average
over the batch unless built with `reduce=False`, in which case they return one value per example.

Target tokens are ids or strings: one for the whole batch, or one per example (a [batch] list or tensor).
A metric given strings (`logit_diff(" Paris", " Rome")`) is an `UnboundMetric`: every analysis function
binds it to its model's tokenizer (`bind(metric, model)`), checking that each string is a single token.
Called directly, unbound, it raises; there is no global "current model".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

Metric = Callable[[Tensor], Tensor]
Tokens = int | Sequence[int] | Tensor
Targets = Tokens | str | Sequence[str]


class UnboundMetric:
    """A metric whose targets include token strings; `bind(metric, model)` resolves them to ids."""

    def __init__(self, make: Callable[[Any], Metric], description: str) -> None:
        self._make = make  # model -> bound metric
        self.description = description

    def bind(self, model: Any) -> Metric:
        return self._make(model)

    def __call__(self, logits: Tensor) -> Tensor:
        raise TypeError(
            f"{self.description} names tokens by string, so it needs a tokenizer: pass it to an analysis "
            f"function (which binds it to its model), or bind it yourself with "
            f"interp.analysis.metrics.bind(metric, model)"
        )

    def __repr__(self) -> str:
        return f"UnboundMetric({self.description})"


def bind(metric: Metric, model: Any) -> Metric:
    """Resolve a string metric's tokens with `model`'s tokenizer; any other callable is returned unchanged."""
    # Any object with a `bind(model)` method (an UnboundMetric, or a user's own) is bound the same way.
    return metric.bind(model) if callable(getattr(metric, "bind", None)) else metric


def _has_text(tokens: object) -> bool:
    if isinstance(tokens, str):
        return True
    return isinstance(tokens, Sequence) and any(isinstance(t, str) for t in tokens)


def _ids(model: Any, tokens: Targets) -> Tokens:
    """Token strings -> ids, each string exactly one token (model.to_single_token raises otherwise)."""
    if isinstance(tokens, str):
        return model.to_single_token(tokens)
    if isinstance(tokens, Sequence):
        return [model.to_single_token(t) if isinstance(t, str) else t for t in tokens]
    return tokens


def _textual(factory: Callable[..., Metric], name: str, *targets: Targets, **kw: Any) -> Metric | None:
    """An UnboundMetric when any target is text, else None (the caller builds the bound metric)."""
    if not any(_has_text(t) for t in targets):
        return None
    args = ", ".join(repr(t) for t in targets)
    return UnboundMetric(lambda model: factory(*(_ids(model, t) for t in targets), **kw), f"{name}({args})")


def upcast(x: Tensor) -> Tensor:
    """At least float32 for softmax and friends (float64 stays float64, for precise tests)."""
    return x if x.dtype == torch.float64 else x.float()


def pick(logits: Float[Tensor, "batch *pos d_vocab"], tokens: Tokens) -> Tensor:
    """logits[..., token], with one token for all rows or one per example (first axis)."""
    if _has_text(tokens):
        raise TypeError(f"token strings {tokens!r} need a tokenizer: bind the metric to a model first")
    ids = torch.as_tensor(tokens, device=logits.device)
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise TypeError(f"token ids must be integers, got {ids.dtype}")
    ids = ids.long()
    d_vocab = logits.shape[-1]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= d_vocab):
        bad = ids[(ids < 0) | (ids >= d_vocab)].unique().tolist()
        raise ValueError(f"token id(s) {bad} out of range: ids must lie in [0, {d_vocab}), the vocabulary")
    if ids.ndim == 0:
        return logits[..., ids]
    if ids.shape[0] != logits.shape[0]:
        raise ValueError(f"{ids.shape[0]} per-example tokens for logits with batch {logits.shape[0]}")
    index = ids.view(-1, *[1] * (logits.ndim - 1)).expand(*logits.shape[:-1], 1)
    return logits.gather(-1, index).squeeze(-1)


def _reduce(values: Tensor, reduce: bool) -> Tensor:
    return values.mean() if reduce else values


def logit_diff(correct: Targets, incorrect: Targets, reduce: bool = True) -> Metric:
    """logit[correct] − logit[incorrect]."""
    unbound = _textual(logit_diff, "logit_diff", correct, incorrect, reduce=reduce)
    if unbound is not None:
        return unbound

    def metric(logits: Tensor) -> Tensor:
        return _reduce(pick(logits, correct) - pick(logits, incorrect), reduce)

    return metric


def log_prob(target: Targets, reduce: bool = True) -> Metric:
    """log P(target), computed in float32 so small probabilities keep their precision."""
    return _picked(log_prob, "log_prob", lambda logits: upcast(logits).log_softmax(-1), target, reduce)


def prob(target: Targets, reduce: bool = True) -> Metric:
    """P(target)."""
    return _picked(prob, "prob", lambda logits: upcast(logits).softmax(-1), target, reduce)


def _picked(
    factory: Callable[..., Metric],
    name: str,
    transform: Callable[[Tensor], Tensor],
    target: Targets,
    reduce: bool,
) -> Metric:
    """The metric transform(logits)[..., target] (an UnboundMetric while the target is text)."""
    unbound = _textual(factory, name, target, reduce=reduce)
    if unbound is not None:
        return unbound

    def metric(logits: Tensor) -> Tensor:
        return _reduce(pick(transform(logits), target), reduce)

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
    if isinstance(metric, UnboundMetric):
        inner = metric
        return UnboundMetric(
            lambda model: normalized(inner.bind(model), clean, corrupted), f"normalized({inner.description})"
        )

    def wrapped(logits: Tensor) -> Tensor:
        return normalized_recovery(metric(logits), clean, corrupted)

    return wrapped
