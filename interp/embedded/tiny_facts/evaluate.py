"""Top-1 accuracy of a model on the tiny-facts evaluation sets, and a per-layer ablation table.

Shared by the training script (which writes `eval.json`), the model card and the tests, so every figure
about the shipped model is computed the same way (`interp.analysis.scoring`): the prompt gets BOS
prepended, batches are right padded, and the logits are read at each prompt's last real token, scoring
only the answer's first token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor

from interp.analysis.scoring import score_answers
from interp.analysis.specs import MLP, Attn
from interp.embedded.tiny_facts.corpus import Example, eval_sets
from interp.transformer import HookedTransformer

Hook = tuple[str, Callable[[Tensor, object], Tensor]]
Method = Literal["zero", "mean"]


def _correct(
    model: HookedTransformer, examples: Sequence[Example], batch_size: int, hooks: Sequence[Hook] = ()
) -> Tensor:
    """Bool [len(examples)]: whether the top-1 next token is the answer's first token (optionally hooked)."""
    out = [
        score_answers(
            model,
            [e.prompt for e in examples[i : i + batch_size]],
            [e.answer for e in examples[i : i + batch_size]],
            prepend_bos=True,
            hooks=hooks,
        ).correct
        for i in range(0, len(examples), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def accuracy(model: HookedTransformer, examples: Sequence[Example], batch_size: int = 256) -> float:
    """Fraction of `examples` whose answer's first token is the model's top-1 prediction."""
    if not examples:
        raise ValueError("accuracy of an empty example list is undefined")
    was_training = model.training
    model.eval()
    try:
        return _correct(model, examples, batch_size).float().mean().item()
    finally:
        model.train(was_training)


def evaluate(model: HookedTransformer, seed: int = 0, n_binding: int = 200) -> dict[str, float]:
    """Top-1 accuracy on every set of `eval_sets(seed)` (facts split by template, disambiguation, binding)."""
    return {name: accuracy(model, examples) for name, examples in eval_sets(seed, n_binding).items()}


@torch.no_grad()
def ablation_hooks(
    model: HookedTransformer,
    site: Attn | MLP,
    method: Method,
    examples: Sequence[Example],
    batch_size: int = 256,
) -> list[Hook]:
    """Hooks replacing the site's activation by zero ("zero"), or at every position by its mean over every
    real (non-padding) position of the example set ("mean", collected in clean passes)."""
    name = site.hook_name
    if method == "zero":
        return [(name, lambda act, hook: torch.zeros_like(act))]
    if method != "mean":
        raise ValueError(f"ablation method must be 'zero' or 'mean', got {method!r}")
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        tokens, mask = model.to_tokens(
            [e.prompt for e in examples[i : i + batch_size]],
            prepend_bos=True,
            padding_side="right",
            return_attention_mask=True,
        )
        _, cache = model.run_with_cache(tokens, names_filter=[name], attention_mask=mask)
        keep = mask.bool()
        total = total + cache[name][keep].sum(0)
        count += int(keep.sum())
    mean = total / count
    return [(name, lambda act, hook: mean.expand_as(act).clone())]


def ablation_table(
    model: HookedTransformer, examples: Sequence[Example], batch_size: int = 256
) -> list[dict[str, object]]:
    """Accuracy drop on `examples` when each attention layer and each MLP layer is zero- or mean-ablated.

    One row per (layer, component): {"layer", "component" ("attn"|"mlp"), "clean", "zero", "mean",
    "zero_drop", "mean_drop"}; a drop is clean accuracy minus ablated accuracy.
    """
    was_training = model.training
    model.eval()
    try:
        clean = _correct(model, examples, batch_size).float().mean().item()
        rows = []
        for layer in range(model.cfg.n_layers):
            for component, site in (("attn", Attn(layer)), ("mlp", MLP(layer))):
                row: dict[str, object] = {"layer": layer, "component": component, "clean": clean}
                for method in ("zero", "mean"):
                    hooks = ablation_hooks(model, site, method, examples, batch_size)
                    acc = _correct(model, examples, batch_size, hooks).float().mean().item()
                    row[method], row[f"{method}_drop"] = acc, clean - acc
                rows.append(row)
        return rows
    finally:
        model.train(was_training)
