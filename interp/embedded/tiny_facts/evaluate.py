"""Top-1 accuracy of a model on the tiny-facts evaluation sets, and a per-layer ablation table.

Shared by the training script (which writes `eval.json`), the model card and the tests, so every figure
about the shipped model is computed the same way: the prompt gets BOS prepended, batches are right
padded, and the logits are read at each prompt's last real token, scoring only the answer's first token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from interp.embedded.tiny_facts.corpus import Example, eval_sets
from interp.transformer import HookedTransformer

Hook = tuple[str, Callable[[Tensor, object], Tensor]]


def _first_token(model: HookedTransformer, answer: str) -> int:
    return model.tokenizer.encode(answer, add_special_tokens=False)[0]


@torch.no_grad()
def _correct(
    model: HookedTransformer, examples: Sequence[Example], batch_size: int, hooks: Callable | None = None
) -> Tensor:
    """Bool [len(examples)]: whether the top-1 next token is the answer's first token.

    `hooks(mask)` may return forward hooks for each batch (the ablations need the batch's padding mask).
    """
    out = []
    for i in range(0, len(examples), batch_size):
        batch = examples[i : i + batch_size]
        tokens, mask = model.to_tokens(
            [e.prompt for e in batch], prepend_bos=True, padding_side="right", return_attention_mask=True
        )
        fwd = hooks(mask) if hooks is not None else []
        with model.hooks(fwd):
            logits = model(tokens, attention_mask=mask)
        last = mask.sum(-1) - 1  # right padding: the last real token is at length - 1
        pred = logits[torch.arange(len(batch)), last].argmax(-1)
        target = torch.tensor([_first_token(model, e.answer) for e in batch], device=pred.device)
        out.append(pred == target)
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


def _ablation_hooks(
    model: HookedTransformer, name: str, mode: str, examples: Sequence[Example], batch_size: int
) -> Callable[[Tensor], list[Hook]]:
    """Hooks replacing activation `name` by zero, or by its mean over the eval batch's real positions."""
    if mode == "zero":
        return lambda mask: [(name, lambda act, hook: torch.zeros_like(act))]
    # Mean over every real (non-padding) position of the whole example set, collected in one clean pass.
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
    return lambda mask: [(name, lambda act, hook: mean.expand_as(act).clone())]


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
            for component, hook in (("attn", "hook_attn_out"), ("mlp", "hook_mlp_out")):
                name = f"blocks.{layer}.{hook}"
                row: dict[str, object] = {"layer": layer, "component": component, "clean": clean}
                for mode in ("zero", "mean"):
                    hooks = _ablation_hooks(model, name, mode, examples, batch_size)
                    acc = _correct(model, examples, batch_size, hooks).float().mean().item()
                    row[mode], row[f"{mode}_drop"] = acc, clean - acc
                rows.append(row)
        return rows
    finally:
        model.train(was_training)
