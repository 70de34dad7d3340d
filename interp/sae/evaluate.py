"""Are a dictionary's latents the world's facts? Scored against the embedded model's known world.

For each attribute value v of the world (country = France, continent = Europe, job = pilot, ...):
- positives are the last-subject-token positions (or last positions) of fact prompts whose subject has v;
  every other fact prompt's same position is a negative;
- each latent is a detector (fires = activation > 0); the best latent by F1 is reported with its precision
  and recall;
- the null is a random dictionary of the same width and L0 under the same best-of-N selection;
- the knowledge-neuron baseline is the best single MLP neuron of the same layer, each neuron thresholded at
  the quantile (of 50/75/90/95/99%) that maximises its F1, which favours the baseline;
- specificity: zeroing the best latent (spliced with the error term, so nothing else changes) lowers
  P(answer) on the facts whose subject has v, and should not on the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from interp.sae.config import SAEConfig
from interp.sae.sae import SAE

QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class FactItem:
    """One fact prompt and what the world says about its subject."""

    prompt: str
    subject: str
    answer: str  # leading space; its first token is scored
    values: dict[str, str] = field(
        hash=False
    )  # attribute -> value of the subject, e.g. {"country": "France"}


def tiny_facts_items(split: str | None = "train") -> list[FactItem]:
    """The embedded tiny-facts world's fact prompts (countries and people) with their subjects' attributes."""
    from interp.embedded.tiny_facts import world
    from interp.embedded.tiny_facts.corpus import fact_examples

    attrs: dict[str, dict[str, str]] = {}
    for c in world.COUNTRIES:
        attrs[c.name] = {"country": c.name, "capital": c.capital, "language": c.language, "currency": c.currency, "continent": c.continent}  # fmt: skip
    for p in world.PEOPLE:
        attrs[p.name] = {"person": p.name, "birth_country": p.birth_country, "job": p.job, "sport": p.sport}
    return [
        FactItem(e.prompt, e.subject, e.answer, attrs[e.subject])
        for e in fact_examples()
        if e.kind in ("fact", "person") and (split is None or e.split == split)
    ]


@dataclass
class GroundTruth:
    table: pd.DataFrame  # one row per attribute value
    summary: dict[str, float]


def positions(model: Any, items: Sequence[FactItem], at: str) -> tuple[Tensor, Tensor, Tensor]:
    """Right-padded tokens, mask and the read position per item: the last subject token, or the last token."""
    from interp.analysis.tracing import subject_span

    tokens, mask = model.to_tokens([it.prompt for it in items], return_attention_mask=True)
    last = mask.sum(-1) - 1
    if at == "last":
        return tokens, mask, last
    if at != "subject":
        raise ValueError(f"at must be 'subject' or 'last', got {at!r}")
    pos = [
        subject_span(model, tokens[i : i + 1, : int(last[i]) + 1], it.subject)[1] - 1
        for i, it in enumerate(items)
    ]
    return tokens, mask, torch.tensor(pos)


def _read(model: Any, hook: str, tokens: Tensor, mask: Tensor, pos: Tensor, batch: int = 256) -> Tensor:
    rows = []
    for i in range(0, len(tokens), batch):
        _, cache = model.run_with_cache(
            tokens[i : i + batch], attention_mask=mask[i : i + batch], names_filter=hook
        )
        act = cache[hook]
        rows.append(act[torch.arange(act.shape[0]), pos[i : i + batch]])
    return torch.cat(rows)


def _f1(fired: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per unit (columns of `fired` [n, units] bool): precision, recall and F1 against labels [n] bool."""
    tp = (fired & labels[:, None]).sum(0).float()
    precision = tp / fired.sum(0).clamp_min(1)
    recall = tp / labels.sum().clamp_min(1)
    return precision, recall, 2 * precision * recall / (precision + recall).clamp_min(1e-12)


def random_like(sae: SAE, l0: float, seed: int) -> SAE:
    """A random TopK dictionary with `sae`'s width and (rounded) L0: the null for best-of-N selection."""
    k = max(1, round(l0))
    cfg = SAEConfig("topk", d_in=sae.cfg.d_in, d_sae=sae.cfg.d_sae, hook_name=sae.cfg.hook_name, k=k,
                    reshape_activations=sae.cfg.reshape_activations)  # fmt: skip
    null = SAE(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        null.W_enc.copy_(torch.randn(null.W_enc.shape, generator=gen))
        null.W_dec.copy_(torch.randn(null.W_dec.shape, generator=gen))
    return null


def evaluate(
    model: Any,
    sae: SAE,
    items: Sequence[FactItem] | None = None,
    at: str = "subject",
    null_seeds: int = 3,
    neuron_layer: int | None = None,
    max_ablations: int = 40,
    attributes: Sequence[str] | None = None,
) -> GroundTruth:
    """Best latent per attribute value by F1, against a random dictionary and the best MLP neuron
    (`attributes` restricts the table to some attributes, e.g. ["continent", "job"])."""
    items = tiny_facts_items() if items is None else list(items)
    tokens, mask, pos = positions(model, items, at)
    host = _read(model, sae.cfg.hook_name, tokens, mask, pos)
    with torch.no_grad():
        acts = sae.encode(sae.flatten(host))
        nulls = [random_like(sae, float((acts > 0).sum(-1).float().mean()), s).encode(sae.flatten(host)) for s in range(null_seeds)]  # fmt: skip
    layer = neuron_layer if neuron_layer is not None else _layer_of(sae.cfg.hook_name)
    neurons = _read(model, f"blocks.{layer}.mlp.hook_post", tokens, mask, pos) if layer is not None else None
    if neurons is not None:  # each neuron as a detector at each quantile threshold, computed once
        neuron_fired = [neurons > neurons.quantile(q, dim=0) for q in QUANTILES]
    values = sorted(
        {(a, v) for it in items for a, v in it.values.items() if attributes is None or a in attributes}
    )
    rows = []
    for attr, value in values:
        labels = torch.tensor([it.values.get(attr) == value for it in items])
        if labels.all() or not labels.any():
            continue
        p, r, f = _f1(acts > 0, labels)
        best = int(f.argmax())
        row = {"attribute": attr, "value": value, "n_pos": int(labels.sum()), "latent": best,
               "f1": float(f[best]), "precision": float(p[best]), "recall": float(r[best]),
               "null_f1": max(float(_f1(n > 0, labels)[2].max()) for n in nulls) if nulls else float("nan")}  # fmt: skip
        if neurons is not None:
            nf = torch.stack([_f1(fired, labels)[2] for fired in neuron_fired]).amax(0)
            row |= {"neuron": int(nf.argmax()), "neuron_f1": float(nf.max())}
        rows.append(row)
    table = pd.DataFrame(rows)
    _specificity(model, sae, items, tokens, mask, pos, table, max_ablations)
    summary = {
        "values": float(len(table)),
        "share_f1_ge_0.9": float((table.f1 >= 0.9).mean()),
        "null_share_f1_ge_0.9": float((table.null_f1 >= 0.9).mean()),
        "mean_f1": float(table.f1.mean()),
        "mean_null_f1": float(table.null_f1.mean()),
    }
    if "neuron_f1" in table:
        summary |= {"neuron_share_f1_ge_0.9": float((table.neuron_f1 >= 0.9).mean()), "mean_neuron_f1": float(table.neuron_f1.mean())}  # fmt: skip
    return GroundTruth(table, summary)


def _layer_of(hook: str) -> int | None:
    parts = hook.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit() else None


@torch.no_grad()
def _specificity(model: Any, sae: SAE, items: Sequence[FactItem], tokens: Tensor, mask: Tensor, pos: Tensor,
                 table: pd.DataFrame, max_ablations: int) -> None:  # fmt: skip
    """drop_pos / drop_neg: mean fall of P(answer) when the value's best latent is zeroed at the read
    position, on the facts whose subject has the value and on the rest (the strongest rows first)."""
    answers = torch.tensor([model.to_tokens(it.answer, prepend_bos=False)[0, 0] for it in items])
    last = mask.sum(-1) - 1
    rows = torch.arange(len(items))
    name = f"{sae.cfg.hook_name}.hook_sae_acts_post"

    def p_answer(latent: int | None) -> Tensor:
        def zero(a: Tensor, hook: Any) -> Tensor:
            a[rows[: a.shape[0]], pos[: a.shape[0]], latent] = 0.0
            return a

        hooks = [] if latent is None else [(name, zero)]
        with model.saes([sae], use_error_term=True), model.hooks(hooks):
            logits = model(tokens, attention_mask=mask)
        return logits[rows, last].softmax(-1)[rows, answers]

    clean = p_answer(None)
    table["drop_pos"] = float("nan")
    table["drop_neg"] = float("nan")
    for idx in table.sort_values("f1", ascending=False).index[:max_ablations]:
        row = table.loc[idx]
        labels = torch.tensor([it.values.get(row.attribute) == row.value for it in items])
        drop = clean - p_answer(int(row.latent))
        table.loc[idx, "drop_pos"] = float(drop[labels].mean())
        table.loc[idx, "drop_neg"] = float(drop[~labels].mean())
