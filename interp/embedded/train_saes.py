"""Train the dictionaries shipped with an embedded model: `python experiments/train_saes.py [--model NAME]`.

(`python -m interp.embedded.<model>.train_saes` is the same for one model; the experiments script is a thin
wrapper.) What differs between models (recipes, documents, facts, threads) is each model's `PLAN`, in
`interp/embedded/<model>/train_saes.py`; the pipeline here is shared:

1. Find the fact-storing layer with interp's own causal tracing: the MLP whose restoration at the last
   subject token has the largest mean indirect effect over a few trained facts (ROME's reading).
2. Train, on activations of documents from the training distribution, a TopK SAE on that layer's
   residual output (`blocks.L.hook_resid_post`) and a ReLU / L1 transcoder from that MLP's input
   (`blocks.L.ln2.hook_normalized`) to its output (`blocks.L.hook_mlp_out`).
3. Round the weights to float16 (the files are half the size; the loader reads them back as float32),
   then measure the rounded dictionaries on held-out documents and score them against the world's
   ground truth (`interp.sae.evaluate`, in each of the world's languages), and write the folders,
   `card.json` and `SAE_CARD.md`.

Everything is seeded and torch runs on the plan's fixed number of threads, so a rerun on the same machine
gives bit-identical weights.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from interp.embedded import DEFAULT, EMBEDDED, saes_dir

ABLATIONS = 20  # values (the highest-F1 ones) whose best latent and best neuron are ablated


@dataclass(frozen=True)
class Recipe:
    """One dictionary; written into card.json so a figure names its recipe."""

    name: str  # folder name under saes/, and the loader's "<model>/<name>"
    kind: str  # "resid" (a TopK SAE on resid_post) or "transcoder" (MLP in -> MLP out, ReLU + L1)
    d_sae: int
    steps: int
    batch_size: int = 512
    lr: float = 2e-3
    k: int | None = None  # TopK
    # L1 coefficient in units of the target's mean centred norm E‖y − ȳ‖: a latent pays l1 per unit of
    # activation, so this sets the size of the smallest component worth a latent, whatever the scale.
    l1_rel: float | None = None


@dataclass(frozen=True)
class TraceFact:
    """A trained fact that causal tracing restores; `group` labels it in the card ("en person")."""

    group: str
    prompt: str
    subject: str  # as written in the prompt
    answer: str  # its first token is the traced answer


@dataclass(frozen=True)
class Plan:
    """What one embedded model's dictionaries are trained from; `interp/embedded/<model>/train_saes.py`."""

    model: str  # the embedded model's name ("tiny-facts")
    recipes: tuple[Recipe, ...]  # names may use "{layer}", the fact layer found
    train_docs: int  # training documents (seed SEED + 1)
    eval_docs: int  # held-out documents (seed SEED + 2), for the card's EV / L0 / CE figures
    threads: int  # the figures and the reproducibility claim are for this thread count
    documents: Callable[[int, int], list[str]]  # (n_docs, seed) -> the model's training documents
    trace_facts: Callable[[Any, int], list[TraceFact]]  # (model, n) -> facts to trace, n of each group
    n_trace_facts: int  # n above (and in quick runs 2)
    trace_label: str  # how the card names what was traced: "8 trained facts"
    items: Callable[[str], list]  # lang -> `FactItem`s of the world (`interp.sae.evaluate.world_items`)
    langs: tuple[str, ...] = ("en",)  # ground truth per language; one language: no per-language keys
    # card.json also gets each null seed's own mean best F1 (best-of-N; the null column is their mean)
    null_by_seed: bool = False
    seed: int = 0
    notes: tuple[str, ...] = ()  # card paragraphs: why this recipe


SEED = 0


def plan_for(model: str) -> Plan:
    """The PLAN of the embedded model `model` (its `train_saes` module)."""
    if model not in EMBEDDED:
        raise ValueError(f"{model!r} is not an embedded model ({', '.join(EMBEDDED)})")
    return importlib.import_module(f"interp.embedded.{EMBEDDED[model]}.train_saes").PLAN


def fact_layer(model: Any, facts: Sequence[TraceFact]) -> tuple[int, list[float], dict[str, list[float]]]:
    """The MLP layer with the largest mean causal-trace indirect effect at the last subject token, the
    mean effect per layer, and the same per group of facts."""
    from interp.analysis import MLP, causal_trace

    rows: dict[str, list[torch.Tensor]] = {}
    for f in facts:
        answer = int(model.to_tokens(f.answer, prepend_bos=False)[0, 0])  # its first token is scored
        df = causal_trace(model, f.prompt, f.subject, answer, site=MLP, n_samples=5, progress=False)
        end = df.attrs["subject_span"][1]
        at = df[df.pos == end - 1].set_index("layer").indirect_effect
        rows.setdefault(f.group, []).append(torch.tensor([float(at[i]) for i in range(model.cfg.n_layers)]))
    effects = torch.stack([r for group in rows.values() for r in group]).mean(0)
    by_group = {g: [round(float(x), 4) for x in torch.stack(r).mean(0)] for g, r in rows.items()}
    return int(effects.argmax()), [round(float(x), 4) for x in effects], by_group


def train_one(model: Any, plan: Plan, recipe: Recipe, layer: int, docs: list[str], progress: bool) -> tuple[Any, dict]:  # fmt: skip
    from interp.analysis import MLP, MLPIn, ResidPost
    from interp.sae import train
    from interp.sae.store import collect_activations

    if recipe.kind == "resid":
        site, target = ResidPost(layer), None
    else:
        site, target = MLPIn(layer), MLP(layer)
    store = collect_activations(
        model, site.hook_name, docs, target_hook=target and target.hook_name, progress=progress
    )
    l1 = None
    if recipe.l1_rel is not None:
        l1 = recipe.l1_rel * float((store.y - store.y.mean(0)).norm(dim=-1).mean())
    sae, report = train(
        model, site, docs, recipe.d_sae, k=recipe.k, l1=l1, target=target, steps=recipe.steps,
        lr=recipe.lr, batch_size=recipe.batch_size, seed=plan.seed, threads=plan.threads, store=store,
        eval_corpus=docs[:64], progress=progress,
    )  # fmt: skip
    return sae, {"l1": l1, "n_train_tokens": len(store), "train_seconds": report.seconds}


def to_fp16(sae: Any) -> Any:
    """The shipped weights: rounded to float16, computed in float32 (as the loader reads them)."""
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(p.half().float())
    return sae


@torch.no_grad()
def measure(model: Any, sae: Any, docs: list[str]) -> dict[str, float]:
    """Explained variance, L0 and dead fraction on the held-out documents' activations, and the next-token
    loss with the dictionary spliced in (no error term) against the clean model on the same documents."""
    from interp.sae.store import collect_activations, prompt_batches

    c = sae.cfg
    store = collect_activations(model, c.hook_name, docs, target_hook=c.hook_name_out, progress=False)
    acts = sae.encode(store.x)
    recon = sae.decode(acts)
    y = store.y
    ev = 1 - float((y - recon).pow(2).sum() / (y - y.mean(0)).pow(2).sum())
    tokens, mask = next(prompt_batches(model, docs, len(docs)))
    clean = float(model.loss(tokens, attention_mask=mask))
    with model.saes([sae]):
        spliced = float(model.loss(tokens, attention_mask=mask))
    with model.saes([sae], use_error_term=True):
        exact = float(model.loss(tokens, attention_mask=mask))
    return {
        "explained_variance": ev,
        "l0": float((acts > 0).float().sum(-1).mean()),
        "dead_fraction": float(((acts > 0).sum(0) == 0).float().mean()),
        "ce_clean": clean,
        "ce_spliced": spliced,
        "ce_increase": spliced - clean,
        "ce_error_term_diff": exact - clean,
        "n_eval_tokens": len(store),
    }


def ground_truth(model: Any, sae: Any, items: list, quick: bool = False, by_seed: bool = False) -> dict[str, Any]:  # fmt: skip
    from interp.sae.evaluate import evaluate

    items = items[:: len(items) // 200] if quick else items
    gt = evaluate(model, sae, items, null_seeds=3, max_ablations=ABLATIONS, neuron_negatives=128)
    t = gt.table
    by_attr = t.groupby("attribute")[["f1", "null_f1", "neuron_f1"]].mean().round(3)
    ablated = t.dropna(subset=["drop_pos"])
    summary = {k: round(v, 4) for k, v in gt.summary.items()}
    if by_seed:
        summary["mean_null_f1_by_seed"] = [round(v, 4) for v in gt.null_by_seed]
    return {
        "summary": summary,
        "by_attribute": {a: row.to_dict() for a, row in by_attr.iterrows()},
        "specificity": {
            "rows": len(ablated),
            "drop_pos": round(float(ablated.drop_pos.mean()), 4),
            "drop_neg": round(float(ablated.drop_neg.mean()), 4),
            "neuron_drop_pos": round(float(ablated.neuron_drop_pos.mean()), 4),
            "neuron_drop_neg": round(float(ablated.neuron_drop_neg.mean()), 4),
        },
        "top": t.sort_values("f1", ascending=False)
        .head(8)[["attribute", "value", "latent", "f1", "precision", "recall", "null_f1", "neuron_f1"]]
        .round(3)
        .to_dict("records"),  # fmt: skip
    }


def main(argv: list[str] | None = None, model_name: str | None = None) -> dict[str, Any]:
    """Train, measure and write one embedded model's dictionaries (`--model`, default `model_name`, else
    the default embedded model)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=list(EMBEDDED), default=model_name or DEFAULT, help="the embedded model (default %(default)s)")  # fmt: skip
    p.add_argument("--out", type=Path, help="folder for the dictionaries (default: the model's saes/)")
    p.add_argument("--quick", action="store_true", help="a few steps on a few documents (a smoke test)")
    p.add_argument("--no-ground-truth", action="store_true", help="skip the ground-truth evaluation")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--rescore", action="store_true", help="no training: recompute the shipped dictionaries' ground truth and rewrite the cards")  # fmt: skip
    args = p.parse_args(argv)
    plan = plan_for(args.model)
    out: Path = args.out or saes_dir(plan.model)
    if args.rescore:
        return rescore(plan, out)
    import interp
    from interp.sae import save
    from interp.scale.rows import torch_threads

    start = time.perf_counter()
    with torch_threads(plan.threads):
        model = interp.load(plan.model)
        layer, effects, by_group = fact_layer(model, plan.trace_facts(model, 2 if args.quick else plan.n_trace_facts))  # fmt: skip
        n_train, n_eval = (300, 60) if args.quick else (plan.train_docs, plan.eval_docs)
        docs = plan.documents(n_train, plan.seed + 1)
        held_out = plan.documents(n_eval, plan.seed + 2)
        card: dict[str, Any] = {"model": plan.model, "fact_layer": layer, "mlp_indirect_effect_by_layer": effects}  # fmt: skip
        if len(by_group) > 1:
            card["mlp_indirect_effect_by_group"] = by_group
        card |= {"threads": plan.threads, "seed": plan.seed, "train_docs": n_train, "eval_docs": n_eval, "saes": {}}  # fmt: skip
        if len(plan.langs) > 1:
            card["langs"] = list(plan.langs)
        items = {} if args.no_ground_truth else {lang: plan.items(lang) for lang in plan.langs}
        for recipe in plan.recipes:
            if args.quick:
                recipe = Recipe(**(asdict(recipe) | {"steps": 20, "d_sae": 64, "batch_size": 128}))
            name = recipe.name.format(layer=layer)
            sae, info = train_one(model, plan, recipe, layer, docs, args.progress)
            sae = to_fp16(sae)
            sae.cfg = sae.cfg.replace(model_name=plan.model)
            folder = out / name
            save(sae, folder)
            _store_fp16(folder)
            entry = {"recipe": asdict(recipe) | {"name": name}, "site": sae.cfg.hook_name,
                     "site_out": sae.cfg.write_hook, **info, **measure(model, sae, held_out)}  # fmt: skip
            if items:
                entry["ground_truth"] = _ground_truths(model, sae, items, plan, args.quick)
            entry["bytes"] = sum(f.stat().st_size for f in folder.iterdir())
            card["saes"][name] = _round(entry)
            print(json.dumps({name: {k: v for k, v in entry.items() if k != "ground_truth"}}, default=str))
        card["seconds"] = round(time.perf_counter() - start, 1)
    _write_cards(card, plan, out)
    return card


def rescore(plan: Plan, out: Path) -> dict[str, Any]:
    """The ground truth of the dictionaries in `out` scored again (after a change to `interp.sae.evaluate`),
    written into card.json and SAE_CARD.md; the weights and every other figure stay as trained."""
    import interp
    import interp.sae
    from interp.scale.rows import torch_threads

    card = json.loads((out / "card.json").read_text())
    with torch_threads(plan.threads):
        model = interp.load(plan.model)
        items = {lang: plan.items(lang) for lang in plan.langs}
        for name, entry in card["saes"].items():
            gt = _ground_truths(model, interp.sae.load(out / name), items, plan, False)
            entry["ground_truth"] = _round(gt)
    _write_cards(card, plan, out)
    return card


def _ground_truths(model: Any, sae: Any, items: dict[str, list], plan: Plan, quick: bool) -> dict[str, Any]:
    """A dictionary's card entry "ground_truth": per language, or the one language's when the plan has one."""
    gts = {lang: ground_truth(model, sae, its, quick, plan.null_by_seed) for lang, its in items.items()}
    return gts if len(plan.langs) > 1 else gts[plan.langs[0]]


def _write_cards(card: dict[str, Any], plan: Plan, out: Path) -> None:
    (out / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    (out / "SAE_CARD.md").write_text(render_card(card, plan))


def _store_fp16(folder: Path) -> None:
    """Rewrite the weights file in float16; cfg.json keeps dtype float32, so both interp and sae_lens read
    the tensors back as float32 (exactly the rounded values the card was measured with)."""
    from safetensors.torch import load_file, save_file

    f = folder / "sae_weights.safetensors"
    save_file({k: v.half().contiguous() for k, v in load_file(str(f)).items()}, str(f))


def _round(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isnan(x) else round(x, 5)
    if isinstance(x, dict):
        return {k: _round(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_round(v) for v in x]
    return x


def ground_truth_columns(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Column label -> ground truth: one per dictionary ("resid-0"), or per dictionary and language
    ("resid-1 (zh)") when the card has several languages."""
    saes = card["saes"]
    if "langs" not in card:
        return {n: e["ground_truth"] for n, e in saes.items() if "ground_truth" in e}
    return {f"{n} ({lang})": e["ground_truth"][lang] for n, e in saes.items() if "ground_truth" in e for lang in card["langs"]}  # fmt: skip


def render_card(card: dict[str, Any], plan: Plan) -> str:
    """SAE_CARD.md from card.json: every figure in it is one of card.json's."""
    saes, model = card["saes"], card["model"]
    lines = [
        f"# Dictionaries shipped with {model}",
        "",
        f"Written by `python experiments/train_saes.py --model {model}` (seed "
        f"{card['seed']}, {card['threads']} torch thread(s), {card['seconds']:.0f} s in all on this machine); "
        "every figure below is in `card.json` beside this file. Load them with "
        + ", ".join(f'`interp.sae.load("{model}/{n}")`' for n in saes)
        + ". Weights are stored in float16 and read back as float32; the figures are measured on the "
        "rounded weights.",
        "",
        f"**Fact-storing layer: {card['fact_layer']}.** Mean indirect effect of restoring the MLP at the last "
        f"subject token (causal tracing, {plan.trace_label}), by layer: "
        + ", ".join(f"{i}: {v}" for i, v in enumerate(card["mlp_indirect_effect_by_layer"]))
        + ".",
    ]  # fmt: skip
    if "mlp_indirect_effect_by_group" in card:
        lines.append(
            "By group: "
            + "; ".join(f"{g}: " + ", ".join(map(str, v)) for g, v in card["mlp_indirect_effect_by_group"].items())
            + "."
        )  # fmt: skip
    for note in plan.notes:
        lines += ["", note]
    lines += ["", "| | " + " | ".join(saes) + " |", "|---|" + "---|" * len(saes)]
    rows = [
        ("reads", lambda e: f"`{e['site']}`"),
        ("writes", lambda e: f"`{e['site_out']}`"),
        ("architecture", lambda e: "TopK" if e["recipe"]["k"] else "ReLU (transcoder)"),
        ("width (d_sae)", lambda e: e["recipe"]["d_sae"]),
        (
            "k / l1",
            lambda e: (
                f"k = {e['recipe']['k']}"
                if e["recipe"]["k"]
                else f"l1 = {e['l1']:.4g} ({e['recipe']['l1_rel']} × E‖y − ȳ‖)"
            ),
        ),  # fmt: skip
        ("steps × batch", lambda e: f"{e['recipe']['steps']} × {e['recipe']['batch_size']}"),
        ("lr", lambda e: e["recipe"]["lr"]),
        ("training tokens (stored)", lambda e: f"{e['n_train_tokens']:,}"),
        ("training time", lambda e: f"{e['train_seconds']:.0f} s"),
        ("explained variance (held out)", lambda e: f"{e['explained_variance']:.3f}"),
        ("L0", lambda e: f"{e['l0']:.2f}"),
        ("dead fraction", lambda e: f"{e['dead_fraction']:.3f}"),
        (
            "CE loss clean → spliced",
            lambda e: f"{e['ce_clean']:.4f} → {e['ce_spliced']:.4f} (+{e['ce_increase']:.4f})",
        ),  # fmt: skip
        ("CE with the error term − clean", lambda e: f"{e['ce_error_term_diff'] + 0.0:.1e}"),  # no "-0.0"
        ("on disk", lambda e: f"{e['bytes'] / 1e6:.2f} MB"),
    ]
    for label, fn in rows:
        lines.append(f"| {label} | " + " | ".join(str(fn(e)) for e in saes.values()) + " |")
    gts = ground_truth_columns(card)
    if gts:
        lines += [
            "",
            "## Ground truth (`interp.sae.evaluate`, trained fact prompts, last subject token)",
            "",
            "Per attribute value of the world, the best latent by F1; the null is a random TopK dictionary of "
            "the same width and L0 under the same best-of-N selection (per value, the mean over 3 seeds of each seed's best latent); the baseline is the best "
            "single layer-MLP neuron (best of 5 quantile thresholds). Specificity: zeroing the value's best "
            "latent (spliced with the error term) at the subject token, mean drop of P(answer) on facts "
            f"whose subject has the value vs on the rest, over the {ABLATIONS} highest-F1 values (the neuron's on 128 sampled negatives); the neuron columns "
            "zero the best neuron instead.",
        ]  # fmt: skip
        if "langs" in card:
            lines.append(
                "Each language is scored on its own prompts; values are the world's English names in both "
                "(Chinese prompts about France have country = France)."
            )
        lines += ["", "| | " + " | ".join(gts) + " |", "|---|" + "---|" * len(gts)]
        grows = [
            ("attribute values", lambda g: int(g["summary"]["values"])),
            (
                "share with F1 ≥ 0.9: SAE / null / neuron",
                lambda g: (
                    f"{g['summary']['share_f1_ge_0.9']:.3f} / {g['summary']['null_share_f1_ge_0.9']:.3f} / {g['summary']['neuron_share_f1_ge_0.9']:.3f}"
                ),
            ),  # fmt: skip
            (
                "mean best F1: SAE / null / neuron",
                lambda g: (
                    f"{g['summary']['mean_f1']:.3f} / {g['summary']['mean_null_f1']:.3f} / {g['summary']['mean_neuron_f1']:.3f}"
                ),
            ),  # fmt: skip
            *(
                [
                    (
                        "mean best F1 of each null seed alone (best-of-N)",
                        lambda g: " / ".join(f"{v:.3f}" for v in g["summary"]["mean_null_f1_by_seed"]),
                    )
                ]  # fmt: skip
                if "mean_null_f1_by_seed" in next(iter(gts.values()))["summary"]
                else []
            ),
            (
                "ΔP(answer) latent zeroed: has value / not",
                lambda g: (
                    f"{g['specificity']['drop_pos'] + 0.0:.4f} / {g['specificity']['drop_neg'] + 0.0:.4f}"
                ),
            ),  # fmt: skip
            (
                "ΔP(answer) neuron zeroed: has value / not",
                lambda g: (
                    f"{g['specificity']['neuron_drop_pos'] + 0.0:.4f} / {g['specificity']['neuron_drop_neg'] + 0.0:.4f}"
                ),
            ),  # fmt: skip
        ]
        for label, fn in grows:
            lines.append(f"| {label} | " + " | ".join(str(fn(g)) for g in gts.values()) + " |")
        attrs = sorted(next(iter(gts.values()))["by_attribute"])
        lines += ["", "Mean best F1 by attribute (SAE / null / neuron):", "", "| attribute | " + " | ".join(gts) + " |",
                  "|---|" + "---|" * len(gts)]  # fmt: skip
        for a in attrs:
            cells = [
                "{f1:.3f} / {null_f1:.3f} / {neuron_f1:.3f}".format(**g["by_attribute"][a])
                for g in gts.values()
            ]
            lines.append(f"| {a} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
