"""How MLPs recall facts: causal tracing, attention knockout, MLP ablation, knowledge neurons, logit lens.

    interp run factual-recall [--quick] [--out DIR] [--model PATH_OR_ID] [--lang en|zh] [--seed N]
                              [--relations capital,language] [--prompts FILE] [--n-facts N]

Facts are the model's world's trained template-0 prompts (`experiments.worlds`: tiny-facts' for
`tiny-facts`, tiny-facts-2's in English or Chinese for `tiny-facts-2` with `--lang`: "The capital of
France is" → " Paris", "法国的首都是" → "巴黎", "Jordan Carter was born in" → ...) that the model answers
correctly (top-1 = the answer's first token), France's capital first; or the lines of --prompts FILE,
each "prompt<TAB>subject<TAB>answer" (the answer verbatim, usually with its leading space in English:
" Paris"; only its first token is scored). Token roles
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
- checks.csv            check, value, criterion, agree
Plots: causal_trace.png, causal_trace_example.png, knockout.png, mlp_ablation.png, logit_lens.png.
"""

from __future__ import annotations

import argparse
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

import interp
from experiments import reporting as R
from experiments.worlds import World
from interp.analysis import (
    MLP,
    Neuron,
    ablation_sweep,
    causal_trace,
    knockout_sweep,
    knowledge_neurons,
    logit_lens,
    neuron_effects,
    neuron_vocab,
    prob,
    subject_span,
)
from interp.analysis.engine import layer_window
from interp.analysis.scoring import score_answers
from interp.transformer import HookedTransformer

NAME = "factual-recall"
SETTINGS = {
    "full": dict(n_facts=96, n_samples=10, kn_facts=3),
    "quick": dict(n_facts=5, n_samples=3, kn_facts=1),
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
    """(prompt, subject, relation, answer) from --prompts FILE or the world's template-0 prompts."""
    if args.prompts:
        rows = []
        for i, line in enumerate(R.read_lines(args.prompts, "--prompts"), 1):
            parts = line.split("\t")
            if len(parts) != 3 or not all(p.strip() for p in parts):
                raise R.UsageError(
                    f"{args.prompts}:{i}: expected 'prompt<TAB>subject<TAB>answer', got {line!r}"
                )
            prompt, subject, answer = parts
            rows.append(
                (prompt, subject, "custom", answer)
            )  # verbatim: " Paris" and "Paris" are different tokens
        return rows
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


def trace(model: HookedTransformer, facts: list[Fact], n_samples: int, window: int, seed: int) -> tuple:
    """ROME causal tracing per fact and kind; per-fact TE from the hidden-state trace."""
    rows, te = [], []
    for f in facts:
        for kind in KINDS:
            df = causal_trace(
                model,
                f.prompt,
                (f.subject_start, f.subject_end),
                f.answer_id,
                kind=kind,
                window=1 if kind == "resid" else window,
                n_samples=n_samples,
                seed=seed,
            )
            for r in df.itertuples():
                rows += [
                    (f.fact, kind, r.layer, role, r.pos, r.token, r.p_restored, r.indirect_effect)
                    for role in f.roles(r.pos)
                ]
            if kind == "resid":
                te.append((df.attrs["p_clean"], df.attrs["p_corrupted"], df.attrs["total_effect"]))
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


def knockouts(model: HookedTransformer, facts: list[Fact], window: int) -> pd.DataFrame:
    """Geva et al. 2023: block last → {subject, non-subject, last} in every head of a window of layers."""
    frames = []
    for f in facts:
        last, subject = f.n_tokens - 1, list(range(f.subject_start, f.subject_end))
        # BOS stays: blocking the attention sink changes every softmax, whatever information it holds.
        sets = {
            "subject": subject,
            "non-subject": [p for p in range(1, last) if p not in subject],
            "last": [last],
        }
        for name, src in sets.items():
            layers = open_layers(model, src, last, window)
            if src and layers:
                df = knockout_sweep(
                    model, f.prompt, {name: src}, window=window, answer=f.answer_id, layers=layers
                )
                frames.append(df.assign(fact=f.fact))
    return pd.concat(frames, ignore_index=True)


def open_layers(model: HookedTransformer, sources: list[int], dest: int, window: int) -> list[int]:
    """The layers whose knockout window leaves `dest` a key to attend to in every one of its layers.

    Under a sliding attention window (tiny-facts-2's layer 0 sees only its own token) blocking last →
    last would empty the query's softmax: that edge set measures nothing there, so it has no row.
    """
    n = model.cfg.n_layers

    def has_key(layer: int) -> bool:
        w = model.config.window(layer)
        return any(k not in sources for k in range(0 if w is None else max(0, dest - w + 1), dest + 1))

    return [c for c in range(n) if all(has_key(layer) for layer in layer_window(c, window, n))]


def mlp_ablation(model: HookedTransformer, facts: list[Fact], reference: torch.Tensor) -> pd.DataFrame:
    """Each MLP layer zeroed or mean-ablated, at the subject tokens or at the last token."""
    n, rows = model.cfg.n_layers, []
    for f in facts:
        span = tuple(range(f.subject_start, f.subject_end))
        cells = [MLP(layer, pos=span) for layer in range(n)] + [MLP(layer, pos=-1) for layer in range(n)]
        where = ["subject"] * n + ["last"] * n
        for method in ("zero", "mean"):
            ref = reference if method == "mean" else None
            df = ablation_sweep(model, f.prompt, cells, prob(f.answer_id), method, ref, per_position=False)
            p0 = df.attrs["base_metric"]
            rows += [
                (f.fact, method, w, c.layer, p0, p, (p - p0) / p0)
                for w, c, p in zip(where, cells, df.metric, strict=True)
            ]
    return pd.DataFrame(rows, columns=COLUMNS["mlp_ablation.csv"])


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


def lens(model: HookedTransformer, facts: list[Fact]) -> pd.DataFrame:
    # One prompt at a time: logit_lens reads absolute positions, so a padded batch would read padding.
    frames = []
    for f in facts:
        df = logit_lens(model, f.prompt, f.answer_id, k=1, positions=-1)
        frames.append(df.assign(fact=f.fact, top_token=[t[0] for t in df.top_tokens]))
    return pd.concat(frames, ignore_index=True)


def summarise(df: pd.DataFrame, keys: list[str], value: str, name: str) -> pd.DataFrame:
    """Mean of `value` over facts per key, with the number of facts."""
    g = df.groupby(keys, sort=False)[value].agg(["mean", "size"]).reset_index()
    return g.rename(columns={"mean": name, "size": "n_facts"})


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
    p = t["params.csv"].set_index("component").params
    lines.append(
        f"- MLPs hold {f(p.mlp / p.total)} of all parameters and {f(mlp_share(t['params.csv']))} of the "
        "non-embedding ones (the 'FFNs hold about 2/3 of the parameters' claim)."
    )
    return lines


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
    ]
    definitions = [
        "ROME (Meng et al. 2022): TE = P(o) − P*(o); IE = P*_restored(o) − P*(o); noise 3× the embedding "
        "std.",
        "Knockout (Geva et al. 2023): relative change (p_new − p_base) / p_base, edges last → sources "
        "blocked.",
        "Ablation and neuron edits (×0 suppress, ×2 amplify): the same relative change of P(answer).",
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
    raw, summary, te = trace(model, facts, cfg["n_samples"], window, args.seed)
    facts_df = pd.DataFrame([asdict(f) for f in facts])
    facts_df[["p_clean", "p_corrupted", "total_effect"]] = te
    ko = knockouts(model, facts, window)
    abl = mlp_ablation(model, facts, mean_reference(model, world, args.seed))
    kn, groups = neurons(model, facts[: cfg["kn_facts"]])
    lens_df = lens(model, facts)
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
    }
    t = {name: R.write_csv(df, out, name, COLUMNS[name]) for name, df in raw_tables.items()}
    t["checks.csv"] = R.write_csv(checks(t, window), out, "checks.csv", COLUMNS["checks.csv"])
    plot_all(out, t)
    return write_report(out, model, args, t, window, world)


def build_parser() -> argparse.ArgumentParser:
    p = R.base_parser(NAME, "How MLPs recall facts: causal tracing, knockout, ablation, neurons, logit lens.")
    p.add_argument("--relations", help="comma-separated relations (default: every relation of the world)")
    p.add_argument(
        "--prompts", type=Path, help="facts to use instead, one 'prompt<TAB>subject<TAB>answer' per line"
    )
    p.add_argument("--n-facts", type=int, default=None, help="at most this many correctly answered facts")
    return p


def main(argv: list[str] | None = None) -> int:
    return R.run_main(build_parser(), argv, run)


if __name__ == "__main__":
    raise SystemExit(main())
