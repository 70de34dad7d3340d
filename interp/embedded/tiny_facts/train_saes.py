"""The plan of the dictionaries shipped with tiny-facts: `python experiments/train_saes.py --model tiny-facts`.

(`python -m interp.embedded.tiny_facts.train_saes` is the same.) The pipeline is shared by the embedded
models and lives in `interp/embedded/train_saes.py`; this is what is tiny-facts' own: a TopK SAE and a
ReLU transcoder of 1024 latents at the fact layer, trained on one torch thread.
"""

from __future__ import annotations

from typing import Any

from interp.embedded.train_saes import Plan, Recipe, TraceFact, main


def trace_facts(model: Any, n: int) -> list[TraceFact]:
    """`n` template-0 facts (countries and people), evenly spaced through the fact list."""
    from interp.embedded.tiny_facts.corpus import FACT_TEMPLATES, fact_examples, render

    facts = [e for e in fact_examples() if e.prompt == render(FACT_TEMPLATES[e.relation][0], e.subject)]
    facts = facts[:: max(1, len(facts) // n)][:n]
    return [TraceFact("facts", e.prompt, e.subject, e.answer) for e in facts]


def _documents(n: int, seed: int) -> list[str]:
    from interp.embedded.tiny_facts.corpus import training_documents

    return training_documents(n, seed=seed)


def _items(lang: str) -> list:
    from interp.sae.evaluate import world_items

    return world_items("tiny-facts", lang)


PLAN = Plan(
    model="tiny-facts",
    recipes=(
        Recipe("resid-{layer}", "resid", d_sae=1024, k=8, steps=800),
        Recipe("transcoder-{layer}", "transcoder", d_sae=1024, l1_rel=0.1, steps=800),
    ),
    train_docs=4000,  # ~70k tokens (position 0, BOS, is never stored)
    eval_docs=400,  # ~7k tokens
    threads=1,
    documents=_documents,
    trace_facts=trace_facts,
    n_trace_facts=8,
    trace_label="8 trained facts",
    items=_items,
)

if __name__ == "__main__":
    main(model_name="tiny-facts")
