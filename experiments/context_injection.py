"""How attention injects context: E' = E + ΔE at an ambiguous word ("apple" after a tech fair vs a kitchen).

    interp run context-injection [--quick] [--out DIR] [--model PATH_OR_ID] [--lang en|zh] [--seed N]
                                 [--words apple,python] [--texts FILE] [--pairs-per-word N]
                                 [--prompts FILE] [--backend local|ray] [--workers N] [--address RAY] [--resume]

Prompts come from the model's world (`experiments.worlds`; tiny-facts-2 in English or Chinese with
`--lang`): "<scene>. Later she mentioned the apple, meaning the" → " company" or " fruit";
"<scene>。后来她提到了苹果，指的是" → "公司" or "水果"; or from --prompts FILE (CSV, JSONL or TSV; a DataFrame
through `run`) with columns prompt, word, sense, answer, split (train, test or heldout: the probe trains on
train and tests on the rest), each prompt "<scene>. <bridge naming the word>" in the world's language. The
patching sweep runs one pair per row through `interp.scale.Pool`: in-process by default, or on --workers Ray
workers (--backend ray), with the same numbers; its shards are written under OUT/shards/ and --resume skips
those already written. A *pair* is the same word and bridge after scenes of its two senses, with equal token counts,
both answered correctly. Ordinary text (default: trained fact prompts; or one text per line of --texts)
is the baseline. Position "token" is the ambiguous word (for ordinary text, every token but the first
and the last), "prediction" the last position. Layer l is the residual entering block l; layer n_layers
is the final residual.

CSVs (columns in order):
- prompts.csv      prompt_id, word, sense, split, correct, n_tokens, word_pos, context_start, context_end,
                   used_in (pairs|probe|pairs+probe|none), prompt
- layer_stats.csv  condition (ambiguous|ordinary), position (token|prediction), layer, n, delta_ratio
                   (‖ΔE‖/‖E‖ with ΔE = attn_out, E = resid_pre), cos_e_eprime (cos(E, E + ΔE)),
                   other_share (share of ΔE from other positions; Ferrando & Voita 2024 importance)
- head_flow.csv    layer, head, destination (token|prediction), from_context (importance of the scene
                   tokens' contributions through the head in E' at the destination), from_word (source =
                   the ambiguous word), n
- patching.csv     site (head|resid_pre), layer, head (empty for resid_pre), destination
                   (all|token|prediction), metric, recovery, n_runs; resid_pre at layer l is the residual
                   entering block l (layer n_layers: the final residual), at the destination only. Run the
                   other-sense prompt and restore one site from the
                   prompt's own run; recovery = (M − M_corrupted) / (M_clean − M_corrupted), pooled over
                   pairs and both directions. metric "logit_diff": M = logit(own sense) − logit(other
                   sense) at the prediction; "probe": M = the final-layer sense probe's signed margin at
                   the ambiguous token (does the site carry the sense *into the word*?)
- probe.csv        position (token|prediction), layer, train_acc, test_acc, chance, n_train, n_test
                   (logistic probe of the word's sense, trained on the corpus's "train" scenes, tested on
                   its held-out scenes; chance = majority-class rate of the test set)
- checks.csv       check, value, criterion, agree
Plots: layer_curves.png, head_maps.png, attention_top_heads.png, flow_graph.png. Report: report.md.
"""

from __future__ import annotations

import argparse
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import torch

from experiments import reporting as R
from experiments.worlds import World
from interp.analysis import Head, Resid, context_flow, denoise, flow_graph, logit_diff, subject_span
from interp.analysis.probe import LinearProbe, probe_layers, probe_patch
from interp.analysis.scoring import score_answers
from interp.scale import Pool
from interp.transformer import HookedTransformer

NAME = "context-injection"
SETTINGS = {
    "full": dict(pairs_per_word=8, flow_prompts=96, probe_max=None, ordinary=48),
    "quick": dict(pairs_per_word=1, flow_prompts=8, probe_max=96, ordinary=6),
}
COLUMNS = {
    "prompts.csv": "prompt_id word sense split correct n_tokens word_pos context_start context_end used_in "
    "prompt".split(),
    "layer_stats.csv": "condition position layer n delta_ratio cos_e_eprime other_share".split(),
    "head_flow.csv": "layer head destination from_context from_word n".split(),
    "patching.csv": "site layer head destination metric recovery n_runs".split(),
    "probe.csv": "position layer train_acc test_acc chance n_train n_test".split(),
    "checks.csv": list(R.Checks.columns),
}
PROMPT_COLUMNS = ("prompt", "word", "sense", "answer", "split")  # --prompts: one disambiguation prompt a row
DECODABLE = 0.8  # probe test accuracy that counts as "the sense is linearly decodable"
Pair = tuple["Item", "Item"]


@dataclass(frozen=True)
class Item:
    """One disambiguation prompt, located: where the word is and where its scene (the context) ends."""

    prompt_id: int
    prompt: str
    word: str
    sense: str
    label: int  # index of the sense in the world's polysemes[word]: the probe's target
    split: str
    sense_id: int
    n_tokens: int
    word_pos: int
    context_start: int  # the scene (the disambiguating context) is tokens context_start .. context_end - 1
    context_end: int
    correct: bool


def examples_from(args: argparse.Namespace, world: World) -> list[Any]:
    """The disambiguation prompts: the world's, or the rows of --prompts (a file or a DataFrame)."""
    if args.prompts is None:
        return world.disambiguation(list(world.polysemes))  # Examples: the same attributes
    from interp.scale import PromptFileError, read_prompts

    try:
        df = read_prompts(args.prompts, PROMPT_COLUMNS)
    except PromptFileError as e:
        raise R.UsageError(str(e)) from None
    bad = [s for s in df.split.unique() if s not in ("train", "test", "heldout")]
    if bad:
        raise R.UsageError(f"--prompts: split must be 'train', 'test' or 'heldout', got {bad}")
    return [
        SimpleNamespace(prompt=str(r.prompt), subject=str(r.word), relation=str(r.sense), answer=str(r.answer), split=str(r.split))
        for r in df.itertuples(index=False)
    ]  # fmt: skip


def senses_of(examples: list[Any], world: World) -> dict[str, list[str]]:
    """Each word's senses in a fixed order (the probe's labels 0, 1): the world's, else first-seen order."""
    out: dict[str, list[str]] = {}
    for e in examples:
        known = [s for _, s in world.polysemes[e.subject]] if e.subject in world.polysemes else None
        out.setdefault(e.subject, known or [])
        if known is None and e.relation not in out[e.subject]:
            out[e.subject].append(e.relation)
    return out


def build_items(model: HookedTransformer, world: World, words: list[str], examples: list[Any]) -> list[Item]:
    examples = [e for e in examples if e.subject in words]
    if not examples:
        raise R.UsageError(f"no disambiguation prompts for the words {words}")
    senses = senses_of(examples, world)
    scored = score_answers(model, [e.prompt for e in examples], [e.answer for e in examples])
    items = []
    for i, e in enumerate(examples):
        n = int(scored.lengths[i])
        row = scored.tokens[i : i + 1, :n]
        label = senses[e.subject].index(e.relation)
        try:
            word_pos = subject_span(model, row, world.word_text(e.subject))[1] - 1  # no scene holds the word
            scene = subject_span(model, row, world.split_scene(e.prompt)[0])
        except ValueError as err:
            raise R.UsageError(
                f"prompt {e.prompt!r}: {err} (expected '<scene>. <bridge naming the word>')"
            ) from None
        sense_id, ok = int(scored.answers[i]), bool(scored.correct[i])
        items.append(
            Item(i, e.prompt, e.subject, e.relation, label, e.split, sense_id, n, word_pos, *scene, ok)
        )
    return items


def select_pairs(items: list[Item], per_word: int, rng: random.Random, world: World) -> list[Pair]:
    """Length-matched (sense 0, sense 1) pairs of correctly answered prompts, round-robin over bridges."""
    by_bridge: dict[tuple[str, str], list[Item]] = defaultdict(list)
    for it in items:
        if it.correct:
            by_bridge[(it.word, world.split_scene(it.prompt)[1])].append(it)
    pools: dict[str, list[list[Pair]]] = defaultdict(list)
    for (word, _), group in sorted(by_bridge.items()):
        zeros, ones = [a for a in group if a.label == 0], [b for b in group if b.label == 1]
        pool = [(a, b) for a in zeros for b in ones if (a.n_tokens, a.word_pos) == (b.n_tokens, b.word_pos)]
        rng.shuffle(pool)
        pools[word].append(pool)
    pairs = []
    for word_pools in pools.values():
        for k in range(per_word):
            live = [p for p in word_pools if p]
            if live:
                pairs.append(live[k % len(live)].pop())
    return pairs


def runs_by_shape(pairs: list[Pair]) -> dict[tuple[int, int], list[Pair]]:
    """(clean, corrupted) runs in both directions, grouped so that positions line up within a group."""
    groups: dict[tuple[int, int], list[Pair]] = defaultdict(list)
    for a, b in pairs:
        groups[(a.n_tokens, a.word_pos)] += [(a, b), (b, a)]
    return groups


def sites(n: int, H: int, pos: int | None) -> list[tuple[Head | Resid, tuple]]:
    """Every head at `pos` (None: all positions), and the whole residual entering each layer 0..n at `pos`."""
    out: list[tuple[Head | Resid, tuple]] = [
        (Head(layer, h, pos=pos), ("head", layer, h)) for layer in range(n) for h in range(H)
    ]
    if pos is None:
        return out
    for layer in range(n + 1):  # layer n: the final residual, resid_post of the last block
        out.append(
            (Resid(min(layer, n - 1), pos, "post" if layer == n else "pre"), ("resid_pre", layer, None))
        )
    return out


def pair_rows(pairs: list[Pair]) -> pd.DataFrame:
    """One row per sense pair: what `patch_pair_row` needs to patch it in both directions."""
    return pd.DataFrame(
        [
            {"prompt": a.prompt, "counterfactual": b.prompt, "answer_id": a.sense_id,
             "counterfactual_answer_id": b.sense_id, "n_tokens": a.n_tokens, "word_pos": a.word_pos}
            for a, b in pairs
        ]
    )  # fmt: skip


def patch_pair_row(model: HookedTransformer, row: dict, seed: int) -> pd.DataFrame:
    """Denoise every site for one pair, both directions as one batch of two runs (each run restores its
    own prompt's activations into the other-sense prompt): (key.., M, M_corrupted, M_clean, n_runs)."""
    n, H, n_tok, wpos = model.cfg.n_layers, model.cfg.n_heads, int(row["n_tokens"]), int(row["word_pos"])
    a, b, ids = (
        row["prompt"],
        row["counterfactual"],
        [int(row["answer_id"]), int(row["counterfactual_answer_id"])],
    )
    dests = (("all", None), ("token", wpos), ("prediction", n_tok - 1))
    cells = [(s, (*k, dest, "logit_diff")) for dest, pos in dests for s, k in sites(n, H, pos)]
    metric = logit_diff(ids, ids[::-1])
    df = denoise(model, [a, b], [b, a], [s for s, _ in cells], metric, progress=False)
    ends = (df.attrs["base_metric"], df.attrs["source_metric"], 2)
    keys = ["site", "layer", "head", "destination", "metric"]
    rows = [(*key, value, *ends) for (_, key), value in zip(cells, df["metric"], strict=True)]
    return pd.DataFrame(rows, columns=[*keys, "m", "m_corr", "m_clean", "n_runs"])


def patch_logit_diff(pool: Pool, pairs: list[Pair], out: Path, args: argparse.Namespace) -> list[tuple]:
    """Every pair through the pool (its shards under OUT/shards/patching): the rows `pooled_recovery` pools."""
    df = R.sweep_rows(pool, patch_pair_row, pair_rows(pairs), out, "patching", args)
    return list(df.drop(columns=["shard", "row"]).itertuples(index=False, name=None))


def patch_probe(model: HookedTransformer, pairs: list[Pair], probe: LinearProbe) -> list[tuple]:
    """Restore one site at the word, read the final-layer sense probe there (signed: own sense positive)."""
    n, H = model.cfg.n_layers, model.cfg.n_heads
    rows = []
    for (_, wpos), runs in runs_by_shape(pairs).items():
        clean, corr = [c.prompt for c, _ in runs], [k.prompt for _, k in runs]
        sign = torch.tensor([1.0 if c.label == 1 else -1.0 for c, _ in runs])
        cells = sites(n, H, wpos)
        df = probe_patch(
            model, corr, clean, [s for s, _ in cells], lambda r, sign=sign: probe(r) * sign, read_pos=wpos
        )
        ends = (df.attrs["base_metric"], df.attrs["source_metric"], len(runs))
        rows += [
            (*key, "token", "probe", value, *ends)
            for (_, key), value in zip(cells, df["metric"], strict=True)
        ]
    return rows


def pooled_recovery(rows: list[tuple]) -> pd.DataFrame:
    """(M − M_corrupted) / (M_clean − M_corrupted) with each M a run-weighted mean over shape groups."""
    keys = ["site", "layer", "head", "destination", "metric"]
    df = pd.DataFrame(rows, columns=[*keys, "m", "m_corr", "m_clean", "n_runs"])
    for col in ("m", "m_corr", "m_clean"):
        df[col] *= df["n_runs"]
    g = df.astype({"head": "Int64"}).groupby(keys, sort=False, dropna=False).sum().reset_index()
    return g.assign(recovery=(g.m - g.m_corr) / (g.m_clean - g.m_corr))


def flows(model: HookedTransformer, items: list[Item], texts: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-layer ΔE statistics and per-head flow from the scene, one ContextFlow per (prompt, layer)."""
    stats, heads = [], []
    jobs = [
        ("ambiguous", it.prompt, {it.word_pos: "token", it.n_tokens - 1: "prediction"}, it) for it in items
    ]
    for text in texts:
        last = len(model.to_str_tokens(text)) - 1
        jobs.append(("ordinary", text, {p: "token" for p in range(1, last)} | {last: "prediction"}, None))
    for condition, prompt, roles, it in jobs:
        for layer in range(model.cfg.n_layers):
            flow = context_flow(model, prompt, layer, destinations=list(roles))
            s = flow.summary(k=1)
            cos = torch.cosine_similarity(flow.resid_pre, flow.resid_pre + flow.attn_out, dim=-1).tolist()
            stats += [
                (condition, role, layer, s.delta_ratio[i], cos[i], s.other_share[i])
                for i, role in enumerate(roles.values())
            ]
            if it is None:
                continue
            g = flow.graph(threshold=0.0)
            g = g[g["kind"] == "head"]
            for pos, role in roles.items():
                d = g[g["dest"] == pos]
                ctx = (
                    d[(d["src"] >= it.context_start) & (d["src"] < it.context_end)]
                    .groupby("head")["importance"]
                    .sum()
                )
                word = d[d["src"] == it.word_pos].groupby("head")["importance"].sum()
                heads += [
                    (layer, h, role, ctx.get(h, 0.0), word.get(h, 0.0)) for h in range(model.cfg.n_heads)
                ]
    stats_df = pd.DataFrame(stats, columns=COLUMNS["layer_stats.csv"][:3] + COLUMNS["layer_stats.csv"][4:])
    heads_df = pd.DataFrame(heads, columns=COLUMNS["head_flow.csv"][:-1])
    return mean_by(stats_df, 3), mean_by(heads_df, 3)


def mean_by(df: pd.DataFrame, n_keys: int) -> pd.DataFrame:
    grouped = df.groupby(list(df.columns[:n_keys]), sort=False)
    return grouped.mean().reset_index().assign(n=grouped.size().values)


def probe(
    model: HookedTransformer, items: list[Item], max_per_split: int | None, seed: int
) -> tuple[pd.DataFrame, LinearProbe, set[int]]:
    """Logistic probe of the sense on the residual at each layer: trained scenes → held-out scenes.

    Also returns the final-layer token probe (reused as a patching metric) and the ids of the prompts used.
    """
    rng = random.Random(seed)
    train = [it for it in items if it.split == "train"]
    test = [it for it in items if it.split != "train"]
    if max_per_split:
        train, test = (rng.sample(s, min(max_per_split, len(s))) for s in (train, test))
    if not train or not test:
        raise R.UsageError("the sense probe needs prompts from both the trained and the held-out scenes")
    data, n = train + test, model.cfg.n_layers
    layers = [Resid(layer) for layer in range(n)] + [
        Resid(n - 1, stage="post")
    ]  # layer n: the final residual
    labels = torch.tensor([float(it.label) for it in data])
    is_train = torch.arange(len(data)) < len(train)
    frames, probes = [], {}
    for position in ("token", "prediction"):
        pos = torch.tensor([it.word_pos if position == "token" else it.n_tokens - 1 for it in data])
        df, fitted = probe_layers(model, [it.prompt for it in data], layers, pos, labels, is_train, seed=seed)
        frames.append(df.assign(position=position, layer=range(n + 1)))
        probes[position] = fitted[-1]
    return pd.concat(frames, ignore_index=True), probes["token"], {it.prompt_id for it in data}


# ---- checks, plots, report ------------------------------------------------------------------------------


def head_name(layer: float, head: float) -> str:
    return f"L{int(layer)}H{int(head)}"


def select(patch: pd.DataFrame, site: str, destination: str, metric: str) -> pd.DataFrame:
    return patch[(patch.site == site) & (patch.destination == destination) & (patch.metric == metric)]


def checks(patch: pd.DataFrame, head_flow: pd.DataFrame, probe_df: pd.DataFrame) -> pd.DataFrame:
    """Do context flow, activation patching and the probe point at the same heads and layers?"""
    c = R.Checks()
    for dest, metric in (("prediction", "logit_diff"), ("token", "probe")):
        flow = head_flow[head_flow.destination == dest]
        both = flow.merge(select(patch, "head", dest, metric), on=["layer", "head"])
        rho = float(both.from_context.rank().corr(both.recovery.rank()))
        c.add(f"spearman(flow from context, {metric} patching) over heads, {dest}", rho, "> 0.5", rho > 0.5)
        best = R.top(flow, "from_context", 1).iloc[0]
        name = head_name(best.layer, best["head"])
        names = [head_name(r.layer, r.head) for r in R.top(both, "recovery").itertuples()]
        c.add(
            f"top flow head in {metric} patching top 3, {dest}", name, "in " + " ".join(names), name in names
        )
    probes = {p: d.sort_values("layer") for p, d in probe_df.groupby("position")}
    gap = float(probes["token"].test_acc.iloc[0] - probes["token"].chance.iloc[0])
    c.add("probe test_acc at the embeddings minus chance, token", gap, "< 0.15", gap < 0.15)
    for dest, metric in (("prediction", "logit_diff"), ("token", "probe")):
        p_layer = R.first_layer(probes[dest], "test_acc", DECODABLE)
        r_layer = R.first_layer(select(patch, "resid_pre", dest, metric), "recovery", 0.5)
        criterion = f"= first layer with resid {metric} recovery >= 0.5 ({r_layer})"
        c.add(
            f"probe vs resid patching: first layer with test_acc >= {DECODABLE}, {dest}",
            p_layer,
            criterion,
            p_layer is not None and p_layer == r_layer,
        )
    p_layer = R.first_layer(probes["token"], "test_acc", DECODABLE)
    h_layer = int(R.top(select(patch, "head", "token", "probe"), "recovery", 1).layer.iloc[0])
    criterion = f"= top probe-patching head's layer + 1 ({h_layer + 1})"
    c.add(
        f"probe vs top head: first layer with test_acc >= {DECODABLE}, token",
        p_layer,
        criterion,
        p_layer == h_layer + 1,
    )
    decodable = float(probes["token"].test_acc.max())
    used = float(select(patch, "resid_pre", "token", "logit_diff").recovery.max())
    c.add(
        "token: sense decodable (best probe test_acc) / read by the prediction (best resid logit_diff)",
        f"{R.fmt(decodable)} / {R.fmt(used)}",
        f"both or neither reach {DECODABLE} / 0.5",
        (decodable >= DECODABLE) == (used >= 0.5),
    )
    return c.frame()


def plot_all(out: Path, model: HookedTransformer, t: dict[str, pd.DataFrame], item: Item) -> None:
    stats, patch, flow, probe_df = t["layer_stats.csv"], t["patching.csv"], t["head_flow.csv"], t["probe.csv"]
    by_cond = list(stats.groupby(["condition", "position"]))
    titles = {
        "delta_ratio": "‖ΔE‖/‖E‖",
        "cos_e_eprime": "cos(E, E')",
        "other_share": "ΔE share from other positions",
    }
    curves = [
        (title, "layer", [(" ".join(k), d.layer, d[col]) for k, d in by_cond])
        for col, title in titles.items()
    ]
    probes = [(p, d.layer, d.test_acc) for p, d in probe_df.groupby("position")]
    curves.append(("sense probe on held-out scenes (dotted: chance)", "layer (0 = embeddings)", probes))
    R.line_panels(out / "layer_curves.png", curves, refs=[None, None, None, float(probe_df.chance.iloc[0])])

    def grid(df: pd.DataFrame, col: str) -> object:
        return df.pivot_table(index="layer", columns="head", values=col).to_numpy()

    maps = [
        (f"patching {m}, {d}", grid(select(patch, "head", d, m), "recovery"))
        for d, m in (("all", "logit_diff"), ("prediction", "logit_diff"), ("token", "probe"))
    ]
    maps += [
        (f"flow from context, {d}", grid(flow[flow.destination == d], "from_context"))
        for d in ("token", "prediction")
    ]
    R.heatmap_panels(out / "head_maps.png", maps, xlabel="head", ylabel="layer")
    labels = model.to_str_tokens(item.prompt)
    heads = [
        Head(int(r.layer), int(r.head), part="pattern")
        for r in R.top(select(patch, "head", "all", "logit_diff"), "recovery").itertuples()
    ]
    _, cache = model.run_with_cache(item.prompt, names_filter=[h.hook_name for h in heads])
    patterns = [
        (f"{head_name(h.layer, h.head)}: query (row) → key", cache[h.hook_name][h.selector][0]) for h in heads
    ]
    R.heatmap_panels(out / "attention_top_heads.png", patterns, xticks=labels, yticks=labels, signed=False)
    plot_flow(out / "flow_graph.png", model, item, labels)


def plot_flow(path: Path, model: HookedTransformer, item: Item, labels: list[str]) -> None:
    """Source token → destination token edges per layer, width ∝ importance summed over heads."""
    g = flow_graph(model, item.prompt, threshold=0.0)
    g = (
        g[(g["kind"] == "head") & (g["src"] != g["dest"])]
        .groupby(["layer", "src", "dest"])["importance"]
        .sum()
    )
    n = model.cfg.n_layers
    with R.figure(path, 1, 1, figsize=(max(8, 0.5 * len(labels)), 1.6 * n + 1.5)) as (_, ax):
        for (layer, src, dest), w in g[g >= 0.03].items():
            hot = dest in (item.word_pos, item.n_tokens - 1)
            ax.plot([src, dest], [layer, layer + 1], color="C3" if hot else "C0", lw=6 * w, alpha=0.8)
        for layer in range(n + 1):
            ax.scatter(range(len(labels)), [layer] * len(labels), s=8, color="k")
        ax.set_xticks(range(len(labels)), labels, rotation=90)
        ax.set_yticks(range(n + 1), [f"resid_pre {i}" if i < n else "final" for i in range(n + 1)])
        ax.set_title("attention flow: importance ≥ 0.03, red into the word and the prediction")


def findings(t: dict[str, pd.DataFrame]) -> list[str]:
    stats, patch, flow, probe_df = t["layer_stats.csv"], t["patching.csv"], t["head_flow.csv"], t["probe.csv"]
    amb = stats[(stats.condition == "ambiguous") & (stats.position == "token")].set_index("layer")
    ordn = stats[(stats.condition == "ordinary") & (stats.position == "token")].set_index("layer")
    later, f = amb.index[amb.index > 0], R.fmt
    share, ordinary = amb.other_share, ordn.other_share
    lines = [
        f"- At the ambiguous token, the share of ΔE from other positions is {f(share[0])} at layer 0 and "
        f"{f(share[later].mean())} on average over layers {later.min()}-{later.max()} (ordinary text: "
        f"{f(ordinary[0])} and {f(ordinary[later].mean())}); ‖ΔE‖/‖E‖ goes from "
        f"{f(amb.delta_ratio[0])} to {f(amb.delta_ratio[later.max()])} and cos(E, E') from "
        f"{f(amb.cos_e_eprime[0])} to {f(amb.cos_e_eprime[later.max()])}."
    ]
    for dest, metric in (("token", "probe"), ("prediction", "logit_diff")):
        moved = R.top(flow[flow.destination == dest], "from_context").itertuples()
        patched = R.top(select(patch, "head", dest, metric), "recovery").itertuples()
        lines.append(
            f"- Into the {dest}, the heads moving the most scene context (flow importance) are "
            + ", ".join(f"{head_name(r.layer, r.head)} ({f(r.from_context)})" for r in moved)
            + f"; by activation patching ({metric} recovery): "
            + ", ".join(f"{head_name(r.layer, r.head)} ({f(r.recovery)})" for r in patched)
            + "."
        )
    tok, pred = (probe_df[probe_df.position == p].sort_values("layer") for p in ("token", "prediction"))
    used = select(patch, "resid_pre", "token", "logit_diff").recovery.max()
    first = {
        name: R.first_layer(d, "test_acc", DECODABLE) for name, d in (("token", tok), ("prediction", pred))
    }
    lines.append(
        f"- Sense probe at the token: {f(tok.test_acc.iloc[0])} at the embeddings (chance "
        f"{f(tok.chance.iloc[0])}), first >= {DECODABLE} at layer {first['token']}, best "
        f"{f(tok.test_acc.max())}; "
        f"at the prediction first >= {DECODABLE} at layer {first['prediction']}. Restoring the word's whole "
        f"residual recovers at most {f(used)} of the logit difference at the prediction."
    )
    return lines


def write_report(
    out: Path, model: HookedTransformer, args: argparse.Namespace, t: dict[str, pd.DataFrame], world: World
) -> Path:
    patch, prompts, flow = t["patching.csv"], t["prompts.csv"], t["head_flow.csv"]
    kinds = (("all", "logit_diff"), ("prediction", "logit_diff"), ("token", "logit_diff"), ("token", "probe"))
    mode = "quick" if args.quick else "full"
    setup = (
        f"{R.env_summary(model, args.model)}; world {world.label}; seed {args.seed}; {mode} settings. "
        f"{int(patch.n_runs.max()) // 2} length-matched sense pairs for patching; the model answers "
        f"{int(prompts.correct.sum())} of {len(prompts)} disambiguation prompts correctly."
    )
    sections = [
        ("Per layer (mean over prompts and positions)", t["layer_stats.csv"], "layer_stats.csv"),
        (
            "Heads moving scene context (flow), top 5 per destination",
            pd.concat(
                [R.top(flow[flow.destination == d], "from_context", 5) for d in ("token", "prediction")]
            ),
            "head_flow.csv",
        ),
        (
            "Heads by activation patching, top 5",
            pd.concat([R.top(select(patch, "head", d, m), "recovery", 5) for d, m in kinds]),
            "patching.csv",
        ),
        (
            "Restoring the whole residual at one position",
            patch[patch.site == "resid_pre"].sort_values(["metric", "destination", "layer"]),
            "patching.csv",
        ),
        ("Sense probe", t["probe.csv"], "probe.csv"),
    ]
    definitions = [
        "E = resid_pre of the layer at the position, ΔE = that layer's attn_out, E' = E + ΔE = resid_mid.",
        "Share from other positions and flow importance: Ferrando & Voita (2024) proximity, renormalised.",
        "Recovery: (M − M_corrupted) / (M_clean − M_corrupted), M the logit difference (own − other sense) "
        "or the final-layer probe margin at the word, pooled over pairs and both directions.",
    ]
    plots = ["layer_curves.png", "head_maps.png", "attention_top_heads.png", "flow_graph.png"]
    title = "Context injection: attention writes E' = E + ΔE into ambiguous words"
    return R.write_report(out, title, setup, findings(t), sections, t["checks.csv"], definitions, plots)


# ---- main -----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Path:
    out = R.output_dir(args.out)
    cfg = SETTINGS["quick" if args.quick else "full"]
    world = R.world(args)
    examples = examples_from(args, world)
    known = list(dict.fromkeys(e.subject for e in examples))
    words = R.csv_list(args.words) or known
    unknown = [w for w in words if w not in known]
    if unknown:
        raise R.UsageError(f"unknown --words {unknown}; the {world.label} prompts know: {', '.join(known)}")
    if args.pairs_per_word is not None and args.pairs_per_word < 1:
        raise R.UsageError(f"--pairs-per-word must be >= 1, got {args.pairs_per_word}")
    texts = R.read_lines(args.texts, "--texts") if args.texts else None
    model = R.load_model(args.model)
    rng = random.Random(args.seed)
    items = build_items(model, world, words, examples)
    pairs = select_pairs(items, args.pairs_per_word or cfg["pairs_per_word"], rng, world)
    if not pairs:
        raise R.UsageError(
            f"no sense pairs: the model answers {sum(i.correct for i in items)} of {len(items)} prompts for "
            f"{words} correctly, and none form a length-matched pair of both senses"
        )
    if texts is None:
        texts = rng.sample(world.ordinary_texts(), cfg["ordinary"])
    probe_df, final_probe, probed = probe(model, items, cfg["probe_max"], args.seed)
    paired = {it.prompt_id for pair in pairs for it in pair}
    sets = (("pairs", paired), ("probe", probed))
    used_in = ["+".join(name for name, ids in sets if it.prompt_id in ids) or "none" for it in items]
    with R.open_pool(args, model) as pool:
        logit_rows = patch_logit_diff(pool, pairs, out, args)
    patch = pooled_recovery(logit_rows + patch_probe(model, pairs, final_probe))
    flow_items = list(dict.fromkeys(it for pair in pairs for it in pair))[: cfg["flow_prompts"]]
    layer_stats, head_flow = flows(model, flow_items, texts)
    raw = {
        "prompts.csv": pd.DataFrame([asdict(it) for it in items]).assign(used_in=used_in),
        "layer_stats.csv": layer_stats,
        "head_flow.csv": head_flow,
        "patching.csv": patch,
        "probe.csv": probe_df,
    }
    t = {name: R.write_csv(df, out, name, COLUMNS[name]) for name, df in raw.items()}
    chk = checks(t["patching.csv"], t["head_flow.csv"], t["probe.csv"])
    t["checks.csv"] = R.write_csv(chk, out, "checks.csv", COLUMNS["checks.csv"])
    plot_all(out, model, t, pairs[0][0])
    return write_report(out, model, args, t, world)


def build_parser() -> argparse.ArgumentParser:
    p = R.base_parser(NAME, "How attention injects disambiguating context into ambiguous tokens.")
    p.add_argument("--words", help="comma-separated ambiguous words (default: all of the world's)")
    p.add_argument(
        "--prompts",
        type=Path,
        help="disambiguation prompts instead of the world's: CSV, JSONL or TSV with columns "
        + ", ".join(PROMPT_COLUMNS),
    )
    p.add_argument(
        "--texts", type=Path, help="ordinary-text baseline, one text per line (default: fact prompts)"
    )
    p.add_argument("--pairs-per-word", type=int, default=None, help="sense pairs per word for patching")
    R.add_scale_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return R.run_main(build_parser(), argv, run)


if __name__ == "__main__":
    raise SystemExit(main())
