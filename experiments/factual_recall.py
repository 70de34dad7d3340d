"""How MLPs recall facts: causal tracing, attention knockout, MLP ablation, knowledge neurons, logit lens.

    interp run factual-recall [--quick] [--out DIR] [--model PATH_OR_ID] [--lang en|zh] [--seed N]
                              [--relations capital,language] [--prompts FILE] [--n-facts N]
                              [--backend local|ray] [--workers N] [--address RAY] [--resume]

Facts are the model's world's trained template-0 prompts (`experiments.worlds`: tiny-facts' for
`tiny-facts`, tiny-facts-2's in English or Chinese for `tiny-facts-2` with `--lang`: "The capital of
France is" → " Paris", "法国的首都是" → "巴黎", "Jordan Carter was born in" → ...) that the model answers
correctly (top-1 = the answer's first token), France's capital first; or the rows of --prompts FILE: a CSV
or JSONL with columns prompt, subject, answer (and optionally relation), or a TSV of
"prompt<TAB>subject<TAB>answer" lines (the answer verbatim, usually with its leading space in English:
" Paris"; only its first token is scored); `run` also takes a DataFrame there.
The per-fact sweeps (tracing, knockout, ablation, lens) run through `interp.scale.Pool`: in-process by
default, or on --workers Ray workers (--backend ray), with the same numbers; their shards are written under
OUT/shards/ and --resume skips those already written. Token roles
follow ROME: subject first / middle / last token, further tokens (after the subject, before the last),
last token; a one-token subject is both first and last. Layer windows: 1 for hidden states, and ROME's
10-of-48 share of the layers (at least 1) for MLP and attention traces and for knockout (Geva et al.
used 9 of 48).

CSVs (columns in order):
- facts.csv             fact, prompt, subject, relation, answer, subject_start, subject_end, n_tokens,
                        p_clean (P(o)), p_corrupted (P*(o)), total_effect (TE = P(o) − P*(o))
- causal_trace.csv      fact, kind (resid|mlp|attn), layer, role, pos, token, p_restored,
                        indirect_effect (IE = P*_restored(o) − P*(o)); a token in two roles has two rows;
                        tokens before the subject have role "before subject" (the noise cannot reach them)
- trace_summary.csv     kind, role, layer, mean_ie (mean over facts of the per-fact role mean), n_facts
- knockout.csv          fact, sources (subject|non-subject|last), layer, first_layer, last_layer, p_base,
                        p_new, relative_change ((p_new − p_base) / p_base; edges last → sources blocked;
                        no row where a sliding attention window leaves the last token no other key)
- knockout_summary.csv  sources, layer, mean_relative_change, n_facts
- mlp_ablation.csv      fact, method (zero|mean), where (subject|last), layer, p_base, p_ablated,
                        relative_change
- ablation_summary.csv  method, where, layer, mean_relative_change, n_facts
- knowledge_neurons.csv fact, rank, layer, neuron, activation, attribution, answer_vocab_rank (rank of the
                        answer among W_out[neuron] · W_U, 0 = top), top_tokens (top 10, "|"-joined),
                        p_base, p_suppressed (×0), p_amplified (×2), suppress_change, amplify_change
- neuron_groups.csv     fact, n_neurons, p_base, p_suppressed, p_amplified, suppress_change, amplify_change
- logit_lens.csv        fact, layer (0 = embeddings, n_layers = output), target_prob, target_rank, top_token
- lens_summary.csv      layer, mean_target_prob, top1_share, n_facts
- params.csv            component, params, share
- dictionary.csv        sae, attribute, value, n_pos, latent, f1, precision, recall, null_f1, neuron, neuron_f1,
                        drop_pos, drop_neg, neuron_drop_pos, neuron_drop_neg: per attribute value of the
                        model's world (its --lang prompts), each dictionary shipped with the embedded model's
                        best latent by F1 at the last subject token (interp.sae.evaluate); null_f1 is a random
                        dictionary of the same width and L0 under the same best-of-N selection (the mean of
                        the null seeds' best); neuron_f1 the best single MLP neuron of that layer; drop_* the
                        fall of P(answer) when the latent (neuron_drop_*: the neuron) is zeroed there, on facts
                        whose subject has the value (pos) and on the others (neg); empty unless the model is
                        an embedded one that ships dictionaries
- dictionary_summary.csv sae, site, values, l0, share_f1_ge_0.9, null_share_f1_ge_0.9, neuron_share_f1_ge_0.9,
                        mean_f1, mean_null_f1, mean_neuron_f1, drop_pos, drop_neg, neuron_drop_pos,
                        neuron_drop_neg (the drops averaged over the ablated values)
- checks.csv            check, value, criterion, agree
Plots: causal_trace.png, causal_trace_example.png, knockout.png, mlp_ablation.png, logit_lens.png.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import pandas as pd
import torch

import interp
from experiments import reporting as R
from experiments.worlds import World
from interp.analysis import Neuron, knowledge_neurons, neuron_effects, neuron_vocab, subject_span
from interp.analysis.scoring import score_answers
from interp.embedded import embedded_model
from interp.sae.evaluate import COLUMNS as GT_COLUMNS
from interp.scale import Pool, tasks
from interp.transformer import HookedTransformer

Shards = Callable[[Pool, object, pd.DataFrame, str], pd.DataFrame]  # runs one per-fact task over the facts

NAME = "factual-recall"
SETTINGS = {
    "full": dict(n_facts=96, n_samples=10, kn_facts=3, gt_items=None, gt_nulls=3, gt_ablations=20),
    "quick": dict(n_facts=5, n_samples=3, kn_facts=1, gt_items=160, gt_nulls=1, gt_ablations=3),
}
ROLES = ("subject first", "subject middle", "subject last", "further", "last")
KINDS = ("resid", "mlp", "attn")
TOP_NEURONS = 5
COLUMNS = {
    "facts.csv": "fact prompt subject relation answer subject_start subject_end n_tokens p_clean p_corrupted "
    "total_effect".split(),
    "causal_trace.csv": "fact kind layer role pos token p_restored indirect_effect".split(),
    "trace_summary.csv": "kind role layer mean_ie n_facts".split(),
    "knockout.csv": "fact sources layer first_layer last_layer p_base p_new relative_change".split(),
    "knockout_summary.csv": "sources layer mean_relative_change n_facts".split(),
    "mlp_ablation.csv": "fact method where layer p_base p_ablated relative_change".split(),
    "ablation_summary.csv": "method where layer mean_relative_change n_facts".split(),
    "knowledge_neurons.csv": "fact rank layer neuron activation attribution answer_vocab_rank top_tokens "
    "p_base p_suppressed p_amplified suppress_change amplify_change".split(),
    "neuron_groups.csv": "fact n_neurons p_base p_suppressed p_amplified suppress_change "
    "amplify_change".split(),
    "logit_lens.csv": "fact layer target_prob target_rank top_token".split(),
    "lens_summary.csv": "layer mean_target_prob top1_share n_facts".split(),
    "params.csv": "component params share".split(),
    "dictionary.csv": ["sae", *GT_COLUMNS],
    "dictionary_summary.csv": "sae site values l0 share_f1_ge_0.9 null_share_f1_ge_0.9 neuron_share_f1_ge_0.9 "
    "mean_f1 mean_null_f1 mean_neuron_f1 drop_pos drop_neg neuron_drop_pos neuron_drop_neg".split(),
    "checks.csv": list(R.Checks.columns),
}


@dataclass(frozen=True)
class Fact:
    fact: int
    prompt: str
    subject: str
    relation: str
    answer: str
    subject_start: int
    subject_end: int  # exclusive
    n_tokens: int
    answer_id: int

    def roles(self, pos: int) -> list[str]:
        """ROME's token roles of one position (none for tokens before the subject)."""
        s, e, last = self.subject_start, self.subject_end, self.n_tokens - 1
        out = [r for r, hit in (("subject first", pos == s), ("subject last", pos == e - 1)) if hit]
        out += ["subject middle"] if s < pos < e - 1 else []
        out += ["further"] if e <= pos < last else []
        out += ["last"] if pos == last else []
        return out or ["before subject"]  # kept in the raw table (IE = 0 by construction), not averaged


def candidates(args: argparse.Namespace, world: World) -> list[tuple[str, str, str, str]]:
    """(prompt, subject, relation, answer) from --prompts (a file or DataFrame) or the world's template-0 prompts."""
    if args.prompts is not None:
        from interp.scale import PromptFileError, read_prompts

        try:
            df = read_prompts(args.prompts, ("prompt", "subject", "answer"))
        except PromptFileError as e:
            raise R.UsageError(str(e)) from None
        relation = df["relation"] if "relation" in df.columns else ["custom"] * len(df)
        # verbatim: " Paris" and "Paris" are different tokens
        return [
            (str(p), str(s), str(r), str(a))
            for p, s, r, a in zip(df.prompt, df.subject, relation, df.answer, strict=True)
        ]
    relations = R.csv_list(args.relations) or list(world.relations)
    unknown = [r for r in relations if r not in world.relations]
    if unknown:
        raise R.UsageError(
            f"unknown --relations {unknown}; the {world.name} world knows: {', '.join(world.relations)}"
        )
    return [(e.prompt, e.subject, e.relation, e.answer) for e in world.facts(relations)]


def select_facts(
    model: HookedTransformer, rows: list, n: int, rng: random.Random, first_prompt: str
) -> list[Fact]:
    """The facts the model gets right (`first_prompt`, France's capital, first when present), at most n."""
    if not rows:
        raise R.UsageError("the prompt set is empty")
    try:
        scored = score_answers(model, [r[0] for r in rows], [r[3] for r in rows])
    except ValueError as e:  # an answer that encodes to no tokens
        raise R.UsageError(str(e)) from None
    right = []
    for i, (prompt, subject, relation, answer) in enumerate(rows):
        if not scored.correct[i]:
            continue
        length = int(scored.lengths[i])
        try:
            span = subject_span(model, scored.tokens[i : i + 1, :length], subject)
        except ValueError as e:
            raise R.UsageError(str(e)) from None
        right.append((prompt, subject, relation, answer, *span, length, int(scored.answers[i])))
    if not right:
        raise R.UsageError(f"the model answers none of the {len(rows)} facts correctly; nothing to trace")
    first = [r for r in right if r[0] == first_prompt]
    rest = [r for r in right if r not in first]
    chosen = first + rng.sample(rest, min(len(rest), n - len(first)))
    return [Fact(i, *r) for i, r in enumerate(chosen)]


def trace(
    pool: Pool, facts: list[Fact], data: pd.DataFrame, n_samples: int, window: int, shard: Shards
) -> tuple:
    """ROME causal tracing per fact and kind; per-fact TE from the hidden-state trace."""
    windows = {k: 1 if k == "resid" else window for k in KINDS}
    df = shard(
        pool, partial(tasks.causal_trace_row, windows=windows, n_samples=n_samples), data, "causal_trace"
    )
    rows = [
        (r.row, r.kind, r.layer, role, r.pos, r.token, r.p_restored, r.indirect_effect)
        for r in df.itertuples()
        for role in facts[r.row].roles(r.pos)
    ]
    resid = df[df.kind == "resid"].groupby("row", sort=True).first()
    te = list(zip(resid.p_clean, resid.p_corrupted, resid.total_effect, strict=True))
    raw = pd.DataFrame(rows, columns=COLUMNS["causal_trace.csv"])
    per_fact = (
        raw[raw.role.isin(ROLES)]
        .groupby(["kind", "role", "layer", "fact"], sort=False)
        .indirect_effect.mean()
        .reset_index()
    )
    summary = per_fact.groupby(["kind", "role", "layer"], sort=False).indirect_effect.agg(["mean", "size"])
    summary = summary.reset_index().rename(columns={"mean": "mean_ie", "size": "n_facts"})
    summary["role"] = pd.Categorical(summary.role, ROLES)
    summary = summary.sort_values(
        ["kind", "role", "layer"], key=lambda s: s.map(KINDS.index) if s.name == "kind" else s
    )
    return raw, summary.astype({"role": str}), te


def knockouts(pool: Pool, data: pd.DataFrame, window: int, shard: Shards) -> pd.DataFrame:
    """Geva et al. 2023: block last → {subject, non-subject, last} in every head of a window of layers."""
    df = shard(pool, partial(tasks.knockout_row, window=window), data, "knockout")
    return df.rename(columns={"row": "fact"})


def mlp_ablation(pool: Pool, data: pd.DataFrame, reference: torch.Tensor, shard: Shards) -> pd.DataFrame:
    """Each MLP layer zeroed or mean-ablated, at the subject tokens or at the last token."""
    df = shard(
        pool, partial(tasks.ablation_row, methods=("zero", "mean"), reference=reference), data, "mlp_ablation"
    )
    return df.rename(columns={"row": "fact"})


def mean_reference(
    model: HookedTransformer, world: World, seed: int, rows: int = 16, length: int = 32
) -> torch.Tensor:
    """Token windows of the world's running corpus text (rows × length tokens, no BOS) as the mean-ablation
    reference.

    The sweep averages over every row and position of it (`per_position=False`), so each MLP's mean is
    over rows × length tokens of ordinary text, wherever the prompt's subject sits. (`ablate` never
    averages padding in: its mean counts real tokens only; these windows simply have none.)
    """
    text = " ".join(world.documents(4 * rows, seed + 1))
    ids = model.to_tokens(text, prepend_bos=False)[0][: rows * length]
    if ids.numel() < rows * length:
        raise R.UsageError("the mean-ablation reference text is too short for this tokenizer")
    return ids.view(rows, length)


def neurons(model: HookedTransformer, facts: list[Fact]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Knowledge neurons (integrated gradients), their value vectors' top tokens, suppress/amplify effects."""
    rows, groups = [], []
    for f in facts:
        kn = knowledge_neurons(model, f.prompt, f.answer_id).head(TOP_NEURONS)
        specs = [Neuron(int(r.layer), int(r.neuron), pos=-1) for r in kn.itertuples()]
        eff = neuron_effects(model, f.prompt, [*specs, specs], f.answer_id, factors=(0.0, 2.0))
        p = eff.p_new.to_numpy().reshape(-1, 2)  # [cell, (×0, ×2)]
        p0 = float(eff.p_base.iloc[0])
        for rank, (r, s) in enumerate(zip(kn.itertuples(), specs, strict=True)):
            vocab = neuron_vocab(model, s.layer, s.index, k=10)
            with torch.no_grad():
                scores = model.blocks[s.layer].mlp.W_out[s.index] @ model.W_U
            answer_rank = int((scores > scores[f.answer_id]).sum())
            top = "|".join(vocab[vocab.direction == "top"].token)
            rows.append(
                (
                    f.fact,
                    rank,
                    s.layer,
                    s.index,
                    r.activation,
                    r.attribution,
                    answer_rank,
                    top,
                    p0,
                    *p[rank],
                    (p[rank, 0] - p0) / p0,
                    (p[rank, 1] - p0) / p0,
                )
            )
        groups.append((f.fact, len(specs), p0, *p[-1], (p[-1, 0] - p0) / p0, (p[-1, 1] - p0) / p0))
    return pd.DataFrame(rows, columns=COLUMNS["knowledge_neurons.csv"]), pd.DataFrame(
        groups, columns=COLUMNS["neuron_groups.csv"]
    )


def lens(pool: Pool, data: pd.DataFrame, shard: Shards) -> pd.DataFrame:
    return shard(pool, tasks.lens_row, data, "logit_lens").rename(columns={"row": "fact"})


def summarise(df: pd.DataFrame, keys: list[str], value: str, name: str) -> pd.DataFrame:
    """Mean of `value` over facts per key, with the number of facts."""
    g = df.groupby(keys, sort=False)[value].agg(["mean", "size"]).reset_index()
    return g.rename(columns={"mean": name, "size": "n_facts"})


def dictionaries(
    model: HookedTransformer, args: argparse.Namespace, cfg: dict, world: World
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ground truth of the dictionaries shipped with the embedded model the run uses (no training here), on
    its world's fact items in --lang: empty for other models and for a model that ships none."""
    import interp.sae
    from interp.sae.evaluate import evaluate, world_items

    name = embedded_model(args.model)
    names = [n for n in interp.sae.shipped() if name and n.startswith(f"{name}/")]
    if not names:
        return pd.DataFrame(columns=COLUMNS["dictionary.csv"]), pd.DataFrame(columns=COLUMNS["dictionary_summary.csv"])  # fmt: skip
    items = world_items(name, world.lang)
    if cfg["gt_items"]:
        items = random.Random(args.seed).sample(items, cfg["gt_items"])
    tables, rows = [], []
    for name in names:
        sae = interp.sae.load(name)
        gt = evaluate(model, sae, items, null_seeds=cfg["gt_nulls"], max_ablations=cfg["gt_ablations"])
        short = name.split("/", 1)[1]
        tables.append(gt.table.assign(sae=short))
        drops = gt.table[["drop_pos", "drop_neg", "neuron_drop_pos", "neuron_drop_neg"]].mean()
        rows.append({"sae": short, "site": f"{sae.cfg.hook_name} -> {sae.cfg.write_hook}" if sae.cfg.is_transcoder else sae.cfg.hook_name,  # fmt: skip
                     **gt.summary, **drops.to_dict()})  # fmt: skip
    return pd.concat(tables, ignore_index=True), pd.DataFrame(rows)


# ---- checks, plots, report ------------------------------------------------------------------------------


def argbest(df: pd.DataFrame, column: str, largest: bool = True) -> tuple[int, float]:
    row = df.loc[df[column].idxmax() if largest else df[column].idxmin()]
    return int(row.layer), float(row[column])


def trace_at(summary: pd.DataFrame, kind: str, role: str) -> pd.DataFrame:
    return summary[(summary.kind == kind) & (summary.role == role)]


def checks(t: dict[str, pd.DataFrame], window: int) -> pd.DataFrame:
    """Do causal tracing, ablation, knockout, knowledge neurons and the logit lens agree on the layers?"""
    c, tr, abl, ko = R.Checks(), t["trace_summary.csv"], t["ablation_summary.csv"], t["knockout_summary.csv"]
    worst = "mean_relative_change"
    l_mlp, _ = argbest(trace_at(tr, "mlp", "subject last"), "mean_ie")
    at_mlp = f"= causal-trace MLP argmax at the last subject token ({l_mlp})"
    for m in ("zero", "mean"):
        layer, _ = argbest(abl[(abl.method == m) & (abl["where"] == "subject")], worst, False)
        c.add(f"most damaging {m}-ablated MLP at the subject tokens: layer", layer, at_mlp, layer == l_mlp)
    l_attn, _ = argbest(trace_at(tr, "attn", "last"), "mean_ie")
    layer, _ = argbest(ko[ko.sources == "subject"], worst, False)
    criterion = f"within {window // 2} of the attention-trace argmax at the last token ({l_attn})"
    c.add("most damaging last→subject knockout: layer", layer, criterion, abs(layer - l_attn) <= window // 2)
    gains = t["lens_summary.csv"].sort_values("layer").mean_target_prob.diff().iloc[1:].to_numpy()
    block = int(gains.argmax())  # lens row l + 1 minus row l: what block l added
    c.add("block with the largest logit-lens gain in P(answer)", block, ">" + at_mlp, block >= l_mlp)
    ie = {r: trace_at(tr, "mlp", r).mean_ie.max() for r in ("subject last", "last")}
    zero = abl[abl.method == "zero"]
    dmg = {w: -zero[zero["where"] == w][worst].min() for w in ("subject", "last")}
    value = " / ".join(
        f"{R.fmt(a)} vs {R.fmt(b)}" for a, b in ((ie["subject last"], ie["last"]), dmg.values())
    )
    agree = (ie["subject last"] > ie["last"]) == (dmg["subject"] > dmg["last"])
    c.add(
        "MLPs matter more at the subject than at the last token: trace IE / zero-ablation damage",
        value,
        "both comparisons point the same way",
        agree,
    )
    kn_layer = int(t["knowledge_neurons.csv"].layer.mode().iloc[0])
    last, _ = argbest(zero[zero["where"] == "last"], worst, False)
    criterion = f"= most damaging zero-ablated MLP at the last token ({last})"
    c.add("layer holding most top knowledge neurons", kn_layer, criterion, kn_layer == last)
    share = mlp_share(t["params.csv"])
    c.add("MLP share of non-embedding parameters", share, "within 0.05 of 2/3", abs(share - 2 / 3) < 0.05)
    for r in t["dictionary_summary.csv"].itertuples():
        c.add(f"{r.sae}: mean best-latent F1 vs its random null (same width and L0)",
              f"{R.fmt(r.mean_f1)} vs {R.fmt(r.mean_null_f1)}", "the dictionary's is higher", r.mean_f1 > r.mean_null_f1)  # fmt: skip
        c.add(f"{r.sae}: zeroing a value's best latent, drop of P(answer) on its facts vs the others",
              f"{R.fmt(r.drop_pos)} vs {R.fmt(r.drop_neg)}", "larger on its own facts", r.drop_pos > r.drop_neg)  # fmt: skip
    return c.frame()


def mlp_share(params: pd.DataFrame) -> float:
    p = params.set_index("component").params
    return float(p["mlp"] / (p["total"] - p["embedding"] - p["unembedding"]))


def plot_all(out: Path, t: dict[str, pd.DataFrame]) -> None:
    tr, raw, rel = t["trace_summary.csv"], t["causal_trace.csv"], "mean_relative_change"

    def grid(df: pd.DataFrame, index: str, value: str) -> object:
        return df.pivot_table(index=index, columns="layer", values=value)

    maps = [
        (f"mean IE, {k}", grid(tr[tr.kind == k], "role", "mean_ie").reindex(list(ROLES)).to_numpy())
        for k in KINDS
    ]
    R.heatmap_panels(out / "causal_trace.png", maps, xlabel="layer", yticks=list(ROLES))
    ex = raw[raw.fact == 0].drop_duplicates(["kind", "layer", "pos"])
    tokens = ex[ex.kind == "resid"].drop_duplicates("pos").sort_values("pos").token.tolist()
    maps = [(f"IE, {k}", grid(ex[ex.kind == k], "pos", "indirect_effect").to_numpy()) for k in KINDS]
    R.heatmap_panels(out / "causal_trace_example.png", maps, xlabel="layer", yticks=tokens)
    ko, abl, lens_df = t["knockout_summary.csv"], t["ablation_summary.csv"], t["lens_summary.csv"]
    panel = (
        "knockout last → sources: relative change",
        "layer",
        [(s, d.layer, d[rel]) for s, d in ko.groupby("sources")],
    )
    R.line_panels(out / "knockout.png", [panel], refs=[0.0])
    panels = [
        (
            f"{m}-ablated MLP: relative change",
            "layer",
            [(w, d.layer, d[rel]) for w, d in abl[abl.method == m].groupby("where")],
        )
        for m in ("zero", "mean")
    ]
    R.line_panels(out / "mlp_ablation.png", panels, refs=[0.0, 0.0])
    panels = [
        ("logit lens: mean P(answer)", "layer", [("P(answer)", lens_df.layer, lens_df.mean_target_prob)]),
        ("facts with the answer at rank 0", "layer", [("share", lens_df.layer, lens_df.top1_share)]),
    ]
    R.line_panels(out / "logit_lens.png", panels)


def findings(t: dict[str, pd.DataFrame]) -> list[str]:
    f, facts, tr = R.fmt, t["facts.csv"], t["trace_summary.csv"]
    lines = [
        f"- ROME summary over {len(facts)} facts: average total effect TE = {f(facts.total_effect.mean())} "
        f"(P(o) {f(facts.p_clean.mean())} → P*(o) {f(facts.p_corrupted.mean())})."
    ]
    for role in ("subject last", "last"):
        best = [(k, *argbest(trace_at(tr, k, role), "mean_ie")) for k in KINDS]
        lines.append(
            f"- Best average indirect effect at the {role} token: "
            + ", ".join(f"{k} {f(v)} at layer {layer}" for k, layer, v in best)
            + "."
        )
    ko = t["knockout_summary.csv"]
    worst = [(s, *argbest(d, "mean_relative_change", False)) for s, d in ko.groupby("sources", sort=False)]
    lines.append(
        "- Attention knockout (relative change of P(answer), most negative window): "
        + ", ".join(f"last → {s} {f(v)} at layer {layer}" for s, layer, v in worst)
        + "."
    )
    abl = t["ablation_summary.csv"]
    worst = [
        (m, w, *argbest(d, "mean_relative_change", False))
        for (m, w), d in abl.groupby(["method", "where"], sort=False)
    ]
    lines.append(
        "- MLP ablation (most damaging layer, relative change): "
        + ", ".join(f"{m} at {w} layer {layer} {f(v)}" for m, w, layer, v in worst)
        + "."
    )
    kn, groups = t["knowledge_neurons.csv"], t["neuron_groups.csv"].set_index("fact")
    for fact, d in kn.groupby("fact"):
        top = d.sort_values("rank").iloc[0]
        g = groups.loc[fact]
        writers = int((d.answer_vocab_rank < 10).sum())
        lines.append(
            f"- Knowledge neurons for {facts.prompt[fact]!r} → {facts.answer[fact]!r}: top "
            f"L{top.layer}N{top.neuron} (attribution {f(top.attribution)}, answer rank "
            f"{top.answer_vocab_rank} in its value vector, top tokens {top.top_tokens.split('|')[:5]}); "
            f"{writers} of {len(d)} top neurons "
            f"have the answer in their top 10 tokens; suppressing all {int(g.n_neurons)}: "
            f"{f(g.suppress_change)}, amplifying: {f(g.amplify_change)}."
        )
    lens_df = t["lens_summary.csv"]
    lines.append(
        "- Logit lens, mean P(answer) by layer: "
        + ", ".join(f"{r.layer}: {f(r.mean_target_prob)}" for r in lens_df.itertuples())
        + "."
    )
    d = t["dictionary_summary.csv"]
    if len(d):
        lines.append(
            "- Shipped dictionaries against the world's ground truth (last subject token; share of attribute "
            "values whose best latent has F1 ≥ 0.9, with a random dictionary's and the best neuron's): "
            + ", ".join(
                f"{r.sae} {f(r['share_f1_ge_0.9'])} (null {f(r['null_share_f1_ge_0.9'])}, neuron "
                f"{f(r['neuron_share_f1_ge_0.9'])}; mean F1 {f(r.mean_f1)}, null {f(r.mean_null_f1)}, "
                f"neuron {f(r.mean_neuron_f1)})"
                for _, r in d.iterrows()
            )
            + "."
        )
    else:
        lines.append("- Dictionary section: empty (it scores the dictionaries shipped with the embedded model the run uses; this model ships none).")  # fmt: skip
    p = t["params.csv"].set_index("component").params
    lines.append(
        f"- MLPs hold {f(p.mlp / p.total)} of all parameters and {f(mlp_share(t['params.csv']))} of the "
        "non-embedding ones (the 'FFNs hold about 2/3 of the parameters' claim)."
    )
    return lines


def best_values(table: pd.DataFrame, k: int = 8) -> pd.DataFrame:
    """The k highest-F1 rows per dictionary (the full table is dictionary.csv)."""
    if table.empty:
        return table
    return table.sort_values(["sae", "f1"], ascending=[True, False]).groupby("sae", sort=False).head(k)


def write_report(
    out: Path,
    model: HookedTransformer,
    args: argparse.Namespace,
    t: dict[str, pd.DataFrame],
    window: int,
    world: World,
) -> Path:
    tr, kn = t["trace_summary.csv"], t["knowledge_neurons.csv"]
    kn_cols = "fact rank layer neuron attribution answer_vocab_rank suppress_change amplify_change".split()
    prompts = f"prompts from {args.prompts}" if args.prompts else f"world {world.label}"
    setup = (
        f"{R.env_summary(model, args.model)}; {prompts}; seed {args.seed}; {'quick' if args.quick else 'full'} "
        f"settings; {len(t['facts.csv'])} facts the model answers correctly; MLP/attention trace and "
        f"knockout window {window}."
    )
    sections = [
        (
            "Causal tracing: mean IE at the last subject token and the last token",
            tr[tr.role.isin(["subject last", "last"])],
            "trace_summary.csv",
        ),
        ("Attention knockout (Geva et al. 2023)", t["knockout_summary.csv"], "knockout_summary.csv"),
        ("MLP ablation", t["ablation_summary.csv"], "ablation_summary.csv"),
        ("Knowledge neurons (integrated gradients)", kn[kn_cols], "knowledge_neurons.csv"),
        ("Knowledge neurons edited together", t["neuron_groups.csv"], "neuron_groups.csv"),
        ("Logit lens at the last token", t["lens_summary.csv"], "lens_summary.csv"),
        ("Parameters", t["params.csv"], "params.csv"),
        (
            "Dictionaries against the ground truth: summary",
            t["dictionary_summary.csv"],
            "dictionary_summary.csv",
        ),
        (
            "Dictionaries: the highest-F1 attribute values per dictionary",
            best_values(t["dictionary.csv"]),
            "dictionary.csv",
        ),
    ]
    definitions = [
        "ROME (Meng et al. 2022): TE = P(o) − P*(o); IE = P*_restored(o) − P*(o); noise 3× the embedding "
        "std.",
        "Knockout (Geva et al. 2023): relative change (p_new − p_base) / p_base, edges last → sources "
        "blocked.",
        "Ablation and neuron edits (×0 suppress, ×2 amplify): the same relative change of P(answer).",
        "Dictionary ground truth: for an attribute value v, positives are the last-subject-token positions of "
        "trained fact prompts whose subject has v, every other prompt's is a negative; a latent fires when "
        "its activation is > 0; F1 of the best latent; the null is a random TopK dictionary of the same "
        "width and L0 under the same best-of-N selection; the neuron baseline thresholds each MLP neuron at "
        "its best of 5 quantiles.",
    ]
    plots = [
        "causal_trace.png",
        "causal_trace_example.png",
        "knockout.png",
        "mlp_ablation.png",
        "logit_lens.png",
    ]
    title = "Factual recall: where the model looks up a fact"
    return R.write_report(out, title, setup, findings(t), sections, t["checks.csv"], definitions, plots)


# ---- main -----------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> Path:
    out = R.output_dir(args.out)
    cfg = SETTINGS["quick" if args.quick else "full"]
    if args.n_facts is not None and args.n_facts < 1:
        raise R.UsageError(f"--n-facts must be >= 1, got {args.n_facts}")
    world = R.world(args)
    rows = candidates(args, world)
    model = R.load_model(args.model)
    n = model.cfg.n_layers
    window = max(1, round(n * 10 / 48))
    n_facts = args.n_facts or cfg["n_facts"]
    facts = select_facts(model, rows, n_facts, random.Random(args.seed), world.first_prompt)
    facts_df = pd.DataFrame([asdict(f) for f in facts])
    data = facts_df.assign(seed=args.seed)  # every fact's noise from --seed, in any shard, on any worker

    def shard(pool: Pool, task: object, data: pd.DataFrame, name: str) -> pd.DataFrame:
        return R.sweep_rows(pool, task, data, out, name, args)

    with R.open_pool(args, model) as pool:
        raw, summary, te = trace(pool, facts, data, cfg["n_samples"], window, shard)
        ko = knockouts(pool, data, window, shard)
        abl = mlp_ablation(pool, data, mean_reference(model, world, args.seed), shard)
        lens_df = lens(pool, data, shard)
    facts_df[["p_clean", "p_corrupted", "total_effect"]] = te
    kn, groups = neurons(model, facts[: cfg["kn_facts"]])
    lens_sum = (
        lens_df.assign(top1=lens_df.target_rank == 0)
        .groupby("layer")
        .agg(mean_target_prob=("target_prob", "mean"), top1_share=("top1", "mean"), n_facts=("fact", "size"))
        .reset_index()
    )
    raw_tables = {
        "facts.csv": facts_df,
        "causal_trace.csv": raw,
        "trace_summary.csv": summary,
        "knockout.csv": ko,
        "knockout_summary.csv": summarise(
            ko, ["sources", "layer"], "relative_change", "mean_relative_change"
        ),
        "mlp_ablation.csv": abl,
        "ablation_summary.csv": summarise(
            abl, ["method", "where", "layer"], "relative_change", "mean_relative_change"
        ),
        "knowledge_neurons.csv": kn,
        "neuron_groups.csv": groups,
        "logit_lens.csv": lens_df,
        "lens_summary.csv": lens_sum,
        "params.csv": interp.param_breakdown(model),
        **dict(
            zip(
                ("dictionary.csv", "dictionary_summary.csv"),
                dictionaries(model, args, cfg, world),
                strict=True,
            )
        ),
    }
    t = {name: R.write_csv(df, out, name, COLUMNS[name]) for name, df in raw_tables.items()}
    t["checks.csv"] = R.write_csv(checks(t, window), out, "checks.csv", COLUMNS["checks.csv"])
    plot_all(out, t)
    return write_report(out, model, args, t, window, world)


def build_parser() -> argparse.ArgumentParser:
    p = R.base_parser(NAME, "How MLPs recall facts: causal tracing, knockout, ablation, neurons, logit lens.")
    p.add_argument("--relations", help="comma-separated relations (default: every relation of the world)")
    p.add_argument(
        "--prompts",
        type=Path,
        help="facts to use instead: CSV or JSONL with prompt, subject, answer columns, or TSV lines "
        "'prompt<TAB>subject<TAB>answer'",
    )
    p.add_argument("--n-facts", type=int, default=None, help="at most this many correctly answered facts")
    R.add_scale_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    return R.run_main(build_parser(), argv, run)


if __name__ == "__main__":
    raise SystemExit(main())
