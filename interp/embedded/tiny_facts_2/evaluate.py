"""Top-1 accuracy of a model on the tiny-facts-2 evaluation sets (per set and language).

Scoring is tiny-facts' (`interp.embedded.tiny_facts.evaluate`): BOS prepended, right padding, the
logits read at each prompt's last real token, only the answer's first token scored. In Chinese the
answer has no leading space ("巴黎"), and the tokenizer keeps every world word whole, so the first
token is the whole word.
"""

from __future__ import annotations

from interp.embedded.tiny_facts.evaluate import ablation_table, accuracy
from interp.embedded.tiny_facts_2.corpus import eval_sets
from interp.transformer import HookedTransformer

__all__ = ["ablation_table", "accuracy", "evaluate"]


def evaluate(model: HookedTransformer, seed: int = 0, n_binding: int = 200) -> dict[str, float]:
    """Top-1 accuracy on every set of `eval_sets(seed)`: "trained_en", ..., "binding2_zh"."""
    return {name: accuracy(model, examples) for name, examples in eval_sets(seed, n_binding).items()}
