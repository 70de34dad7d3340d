"""Are a dictionary's latents the world's facts? Scored against the embedded model's known world.

For each attribute value v of the world (country = France, continent = Europe, job = pilot, ...):
- positives are the last-subject-token positions (or last positions) of fact prompts whose subject has v;
  every other fact prompt's same position is a negative;
- each latent is a detector (fires = activation > 0); the best latent by F1 is reported with its precision
  and recall;
- the null is a random dictionary of the same width and L0 under the same best-of-N selection: per value,
  each of `null_seeds` random dictionaries' best latent by F1, averaged over the seeds (like for like; the
  best over all seeds would be a best-of-3N selection against the dictionary's best-of-N), and
  `GroundTruth.null_by_seed` has each seed's own mean;
- the knowledge-neuron baseline is the best single MLP neuron of the same layer, each neuron thresholded at
  the quantile (of 50/75/90/95/99%) that maximises its F1, which favours the baseline;
- specificity: zeroing the best latent (spliced with the error term, so nothing else changes) lowers
  P(answer) on the facts whose subject has v, and should not on the others; the best neuron, zeroed at the
  same position, is the baseline.

Every (latent, value) pair is scored at once (true positives are one matrix product), and a latent's
ablation is run only on the prompts where it fires: with the error term, zeroing a latent that is already 0
leaves the forward unchanged, so its drop there is exactly 0.
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
from interp.sae.store import stop_layer

QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99)
COLUMNS = ["attribute", "value", "n_pos", "latent", "f1", "precision", "recall", "null_f1", "neuron",
           "neuron_f1", "drop_pos", "drop_neg", "neuron_drop_pos", "neuron_drop_neg"]  # fmt: skip


@dataclass(frozen=True)
class FactItem:
    """One fact prompt and what the world says about its subject."""

    prompt: str
    subject: str
    answer: str  # leading space; its first token is scored
    # attribute -> value of the subject, e.g. {"country": "France"}
    values: dict[str, str] = field(hash=False)


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


def tiny_facts_2_items(lang: str | None = "en", split: str | None = "train") -> list[FactItem]:
    """tiny-facts-2's fact prompts in `lang` ("en", "zh"; None: both) with their subjects' attributes.

    Values are the world's English names in both languages ("France", not "法国"), so an English and a
    Chinese prompt about the same subject share every value; `subject` is as written in the prompt.
    """
    from interp.embedded.tiny_facts_2 import world
    from interp.embedded.tiny_facts_2.corpus import fact_examples

    attrs: dict[str, dict[str, str]] = {}
    for c in world.COUNTRIES:
        attrs[c.name] = {"country": c.name, "capital": c.capital, "language": c.language, "continent": c.continent}  # fmt: skip
    for p in world.PEOPLE:
        attrs[p.name] = {"person": p.name, "birth_country": p.birth_country, "job": p.job, "sport": p.sport}
    return [
        FactItem(e.prompt, e.subject, e.answer, attrs[e.key])
        for e in fact_examples(lang=lang)
        if split is None or e.split == split
    ]


def world_items(model_name: str, lang: str | None = "en", split: str | None = "train") -> list[FactItem]:
    """The fact items of the embedded model `model_name`'s world in `lang` (tiny-facts has English only)."""
    if model_name == "tiny-facts":
        if lang not in (None, "en"):
            raise ValueError(f"the tiny-facts world has English facts only, not lang={lang!r}")
        return tiny_facts_items(split)
    if model_name == "tiny-facts-2":
        return tiny_facts_2_items(lang, split)
    raise ValueError(f"no world items for {model_name!r}: name an embedded model (tiny-facts, tiny-facts-2)")


@dataclass
class GroundTruth:
    table: pd.DataFrame  # one row per attribute value, columns COLUMNS
    summary: dict[str, float]
    # each null seed's own mean best F1 (best-of-N; the table's null_f1 is their mean, value by value)
    null_by_seed: list[float] = field(default_factory=list)


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


def _read(
    model: Any, hooks: Sequence[str], tokens: Tensor, mask: Tensor, pos: Tensor, batch: int = 512
) -> list[Tensor]:
    """The activations at `hooks` at each prompt's read position, one forward per batch for all hooks."""
    rows: list[list[Tensor]] = [[] for _ in hooks]
    for i in range(0, len(tokens), batch):
        _, cache = model.run_with_cache(
            tokens[i : i + batch], attention_mask=mask[i : i + batch], names_filter=list(hooks),
            stop_at_layer=stop_layer(model, hooks),
        )  # fmt: skip
        for out, hook in zip(rows, hooks, strict=True):
            act = cache[hook]
            out.append(act[torch.arange(act.shape[0]), pos[i : i + batch]])
    return [torch.cat(r) for r in rows]


def _f1(fired: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Precision, recall and F1 of each unit (columns of `fired` [n, units] bool) against labels [n] bool
    (→ [units]) or against each column of labels [n, values] bool (→ [units, values]). The true positives
    of every pair are one matrix product (counts in float32 are exact below 2^24)."""
    one = labels.ndim == 1
    lab = (labels[:, None] if one else labels).float()
    f = fired.float()
    tp = f.T @ lab
    precision = tp / f.sum(0)[:, None].clamp_min(1)
    recall = tp / lab.sum(0)[None].clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
    return (precision[:, 0], recall[:, 0], f1[:, 0]) if one else (precision, recall, f1)


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
    neuron_negatives: int = 256,
) -> GroundTruth:
    """Best latent per attribute value by F1, against a random dictionary and the best MLP neuron
    (`attributes` restricts the table to some attributes, e.g. ["continent", "job"]; `items` default to
    `world_items` of the dictionary's `model_name`, or of the default embedded model). The `max_ablations`
    values with the highest F1 get the specificity columns; a neuron's ablation changes every prompt, so its
    drop on the negatives is measured on a fixed sample of `neuron_negatives` of them."""
    from interp.analysis.specs import Neuron

    if items is None:  # the world of the model the dictionary was trained on, else the default model's
        from interp.embedded import DEFAULT, EMBEDDED

        items = world_items(sae.cfg.model_name if sae.cfg.model_name in EMBEDDED else DEFAULT)
    items = list(items)
    tokens, mask, pos = positions(model, items, at)
    layer = neuron_layer if neuron_layer is not None else _layer_of(sae.cfg.hook_name)
    neuron_hook = Neuron(layer, 0).hook_name if layer is not None else None
    reads = _read(model, [sae.cfg.hook_name] + ([neuron_hook] if neuron_hook else []), tokens, mask, pos)
    with torch.no_grad():
        acts = sae.encode(sae.flatten(reads[0]))
        l0 = float((acts > 0).sum(-1).float().mean())
        nulls = [random_like(sae, l0, s).encode(sae.flatten(reads[0])) for s in range(null_seeds)]
    values = sorted(
        {(a, v) for it in items for a, v in it.values.items() if attributes is None or a in attributes}
    )
    labels = torch.tensor([[it.values.get(a) == v for a, v in values] for it in items]).reshape(len(items), len(values))  # fmt: skip
    keep = labels.any(0) & ~labels.all(0)  # a value every (or no) prompt has cannot be detected
    values = [v for v, k in zip(values, keep.tolist(), strict=True) if k]
    labels = labels[:, keep]
    p, r, f = _f1(acts > 0, labels)  # [d_sae, values]
    null_f1 = (
        torch.stack([_f1(n > 0, labels)[2].amax(0) for n in nulls]) if nulls else None
    )  # [seeds, values]
    best = f.argmax(0)
    cols = torch.arange(len(values))
    table = pd.DataFrame({
        "attribute": [a for a, _ in values], "value": [v for _, v in values],
        "n_pos": labels.sum(0).tolist(), "latent": best.tolist(), "f1": f[best, cols].tolist(),
        "precision": p[best, cols].tolist(), "recall": r[best, cols].tolist(),
        "null_f1": null_f1.mean(0).tolist() if null_f1 is not None else float("nan"),
    })  # fmt: skip
    if neuron_hook is not None:  # each neuron as a detector at each quantile threshold
        neurons = reads[1]
        nf = torch.stack([_f1(neurons > neurons.quantile(q, dim=0), labels)[2] for q in QUANTILES]).amax(0)
        table["neuron"] = nf.argmax(0).tolist()
        table["neuron_f1"] = nf.amax(0).tolist()
    else:
        table["neuron"], table["neuron_f1"] = -1, float("nan")
    _specificity(
        model, sae, items, tokens, mask, pos, acts, labels, table, max_ablations, layer, neuron_negatives
    )
    table = table[COLUMNS]
    summary = {
        "values": float(len(table)),
        "l0": l0,
        "share_f1_ge_0.9": float((table.f1 >= 0.9).mean()),
        "null_share_f1_ge_0.9": float((table.null_f1 >= 0.9).mean()),
        "neuron_share_f1_ge_0.9": float((table.neuron_f1 >= 0.9).mean()),
        "mean_f1": float(table.f1.mean()),
        "mean_null_f1": float(table.null_f1.mean()),
        "mean_neuron_f1": float(table.neuron_f1.mean()),
    }
    by_seed = [] if null_f1 is None else null_f1.mean(1).tolist()
    return GroundTruth(table, summary, by_seed)


def _layer_of(hook: str) -> int | None:
    parts = hook.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "blocks" and parts[1].isdigit() else None


@torch.no_grad()
def _specificity(model: Any, sae: SAE, items: Sequence[FactItem], tokens: Tensor, mask: Tensor, pos: Tensor,
                 acts: Tensor, labels: Tensor, table: pd.DataFrame, max_ablations: int, layer: int | None,
                 neuron_negatives: int, batch: int = 512) -> None:  # fmt: skip
    """drop_pos / drop_neg: mean fall of P(answer) when the value's best latent is zeroed at the read
    position, on the facts whose subject has the value and on the rest (the highest-F1 rows first); the
    neuron_ columns zero the best neuron instead."""
    from interp.analysis.specs import Neuron
    from interp.sae.latent import Latent

    answers = torch.tensor([model.to_tokens(it.answer, prepend_bos=False)[0, 0] for it in items])
    last = mask.sum(-1) - 1

    def p_answer(which: Tensor, hook: str | None = None, index: int = 0) -> Tensor:
        """P(answer) of the prompts `which` with unit `index` of `hook` zeroed at their read position."""
        out = []
        for i in range(0, len(which), batch):
            idx = which[i : i + batch]
            width = int(last[idx].max()) + 1
            rows, at = torch.arange(len(idx)), pos[idx]

            def zero(a: Tensor, hook: Any, rows: Tensor = rows, at: Tensor = at) -> Tensor:
                a[rows, at, index] = 0.0
                return a

            with model.saes([sae], use_error_term=True), model.hooks([] if hook is None else [(hook, zero)]):
                logits = model(tokens[idx, :width], attention_mask=mask[idx, :width])
            out.append(logits[rows, last[idx]].softmax(-1)[rows, answers[idx]])
        return torch.cat(out) if out else torch.zeros(0)

    every = torch.arange(len(items))
    clean = p_answer(every)
    names = ["drop_pos", "drop_neg", "neuron_drop_pos", "neuron_drop_neg"]
    for name in names:
        table[name] = float("nan")
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(items), generator=gen)
    for j in table.sort_values("f1", ascending=False).index[:max_ablations]:
        lab = labels[:, j]
        latent = int(table.loc[j, "latent"])
        firing = every[acts[:, latent] > 0]  # elsewhere zeroing it changes nothing: the drop is exactly 0
        drop = torch.zeros(len(items))
        drop[firing] = clean[firing] - p_answer(firing, Latent(sae, latent).hook_name, latent)
        table.loc[j, "drop_pos"] = float(drop[lab].mean())
        table.loc[j, "drop_neg"] = float(drop[~lab].mean())
        if layer is None:
            continue
        neuron = Neuron(layer, int(table.loc[j, "neuron"]))
        neg = order[~lab[order]][:neuron_negatives]
        which = torch.cat([every[lab], neg])
        ndrop = clean[which] - p_answer(which, neuron.hook_name, neuron.index)
        n_pos = int(lab.sum())
        table.loc[j, "neuron_drop_pos"] = float(ndrop[:n_pos].mean())
        table.loc[j, "neuron_drop_neg"] = float(ndrop[n_pos:].mean())
