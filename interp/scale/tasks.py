"""Per-row tasks for `Pool.run`: one prompt's analysis, each a call to an `interp.analysis` recipe.

Each is `task(model, row, seed, **options) -> DataFrame`; bind the options with `functools.partial` (a
partial of a module-level function pickles by reference, so Ray workers import it). Row columns:

    prompt                      every task
    answer | answer_id          the answer (text: its first token is scored) or its token id
    subject | subject_start/end the subject, as text in the prompt or as a token span [start, end)
    counterfactual              the corrupted prompt (patching, attribution; same token count as prompt)
    counterfactual_answer       the corrupted prompt's answer (patching, attribution: M = logit diff)

    causal_trace_row   kind, layer, pos, token, subject, p_restored, indirect_effect, p_clean, p_corrupted,
                       total_effect (one row per restored (layer, pos) and kind)
    knockout_row       sources (subject|non-subject|last), layer, first_layer, last_layer, p_base, p_new,
                       relative_change (Geva et al. 2023, edges last -> sources)
    ablation_row       method, where (subject|last), layer, p_base, p_ablated, relative_change (each MLP)
    lens_row           layer, target_prob, target_rank, top_token, kl_to_final (logit lens, last token)
    patching_row       layer, pos, metric, normalized (denoise the residual entering each layer)
    attribution_row    layer, pos, effect, metric (attribution patching of the same residuals)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from interp.analysis import (
    MLP,
    ResidPre,
    ablation_sweep,
    attribution_patch,
    causal_trace,
    denoise,
    knockout_sweep,
    logit_diff,
    logit_lens,
    prob,
    subject_span,
)
from interp.analysis.engine import layer_window
from interp.analysis.scoring import answer_token
from interp.analysis.tracing import KINDS
from interp.transformer import HookedTransformer

Row = Mapping[str, Any]


def answer_of(model: HookedTransformer, row: Row, key: str = "answer") -> int:
    """The row's answer token: `<key>_id` when given, else the first token of the text `<key>`."""
    if row.get(f"{key}_id") is not None:
        return int(row[f"{key}_id"])
    if key not in row:
        raise KeyError(f"the row needs an {key!r} (text) or {key + '_id'!r} column; it has {sorted(row)}")
    return answer_token(model, str(row[key]))


def span_of(model: HookedTransformer, row: Row) -> tuple[int, int]:
    """The subject's token span: `subject_start`/`subject_end` when given, else found from `subject` text."""
    if row.get("subject_start") is not None and row.get("subject_end") is not None:
        return int(row["subject_start"]), int(row["subject_end"])
    return subject_span(model, model.to_tokens(row["prompt"]), str(row["subject"]))


def n_tokens(model: HookedTransformer, row: Row) -> int:
    return (
        int(row["n_tokens"]) if row.get("n_tokens") is not None else model.to_tokens(row["prompt"]).shape[-1]
    )


def causal_trace_row(
    model: HookedTransformer,
    row: Row,
    seed: int,
    *,
    windows: Mapping[str, int] | None = None,
    n_samples: int = 10,
) -> pd.DataFrame:
    """ROME causal tracing of one fact for each kind in `windows` (kind -> window; default resid, 1)."""
    windows = dict(windows or {"resid": 1})
    start, end = span_of(model, row)
    answer = answer_of(model, row)
    frames = []
    for kind, window in windows.items():
        df = causal_trace(
            model, row["prompt"], (start, end), answer, site=KINDS[kind], window=window,
            n_samples=n_samples, seed=seed, progress=False,
        )  # fmt: skip
        df = df.assign(kind=kind, p_clean=df.attrs["p_clean"], p_corrupted=df.attrs["p_corrupted"])
        frames.append(df.assign(total_effect=df.attrs["total_effect"]))
    return pd.concat(frames, ignore_index=True)


def knockout_row(model: HookedTransformer, row: Row, seed: int, *, window: int = 9) -> pd.DataFrame:
    """Block last -> {subject, non-subject, last} in every head of a window of layers around each layer."""
    start, end = span_of(model, row)
    last, subject = n_tokens(model, row) - 1, list(range(start, end))
    # BOS stays: blocking the attention sink changes every softmax, whatever information it holds.
    sets = {
        "subject": subject,
        "non-subject": [p for p in range(1, last) if p not in subject],
        "last": [last],
    }
    answer = answer_of(model, row)
    frames = [
        knockout_sweep(model, row["prompt"], {name: src}, window=window, answer=answer, layers=layers, progress=False)
        for name, src in sets.items()
        if src and (layers := _open_layers(model, src, last, window))
    ]  # fmt: skip
    df = pd.concat(frames, ignore_index=True)
    df.attrs = {}
    return df


def _open_layers(model: HookedTransformer, sources: list[int], dest: int, window: int) -> list[int]:
    """The layers whose knockout window leaves `dest` a key to attend to in every one of its layers.

    Under a sliding attention window (tiny-facts-2's layer 0 sees only its own token) blocking last →
    last would empty the query's softmax: that edge set measures nothing there, so it has no row.
    """
    n = model.cfg.n_layers

    def has_key(layer: int) -> bool:
        w = model.config.window(layer)
        return any(k not in sources for k in range(0 if w is None else max(0, dest - w + 1), dest + 1))

    return [c for c in range(n) if all(has_key(layer) for layer in layer_window(c, window, n))]


def ablation_row(
    model: HookedTransformer,
    row: Row,
    seed: int,
    *,
    methods: Sequence[str] = ("zero", "mean"),
    reference: torch.Tensor | None = None,
) -> pd.DataFrame:
    """Each MLP layer ablated (zero, mean over `reference`), at the subject tokens or at the last token."""
    n = model.cfg.n_layers
    start, end = span_of(model, row)
    span = tuple(range(start, end))
    cells = [MLP(layer, pos=span) for layer in range(n)] + [MLP(layer, pos=-1) for layer in range(n)]
    where = ["subject"] * n + ["last"] * n
    metric = prob(answer_of(model, row))
    rows = []
    for method in methods:
        if method == "mean" and reference is None:
            raise ValueError("mean ablation needs reference= (token ids of ordinary text to average over)")
        ref = reference if method == "mean" else None
        df = ablation_sweep(
            model, row["prompt"], cells, metric, method, ref, per_position=False, seed=seed, progress=False
        )
        p0 = df.attrs["base_metric"]
        rows += [
            {"method": method, "where": w, "layer": c.layer, "p_base": p0, "p_ablated": p, "relative_change": (p - p0) / p0}
            for w, c, p in zip(where, cells, df.metric, strict=True)
        ]  # fmt: skip
    return pd.DataFrame(rows)


def lens_row(model: HookedTransformer, row: Row, seed: int) -> pd.DataFrame:
    """The logit lens at the last token: P(answer), its rank and the top token after each layer."""
    # One prompt at a time: logit_lens reads absolute positions, so a padded batch would read padding.
    df = logit_lens(model, row["prompt"], answer_of(model, row), k=1, read_pos=-1)
    df = df.assign(top_token=[t[0] for t in df.top_tokens])
    return df[["layer", "target_prob", "target_rank", "top_token", "kl_to_final"]]


def _pair(model: HookedTransformer, row: Row) -> tuple[str, str, Any]:
    metric = logit_diff(answer_of(model, row), answer_of(model, row, "counterfactual_answer"))
    return row["prompt"], row["counterfactual"], metric


def _resid_sites(model: HookedTransformer, row: Row) -> list[Any]:
    return ResidPre.every(model, n_tokens(model, row))


def patching_row(model: HookedTransformer, row: Row, seed: int) -> pd.DataFrame:
    """Denoising: the counterfactual run with the prompt's residual entering each (layer, pos) restored;
    M = logit(answer) − logit(counterfactual answer)."""
    clean, corrupted, metric = _pair(model, row)
    df = denoise(model, clean, corrupted, _resid_sites(model, row), metric, progress=False)
    return df[["layer", "pos", "metric", "normalized"]]


def attribution_row(model: HookedTransformer, row: Row, seed: int) -> pd.DataFrame:
    """Attribution patching (a gradient estimate of `patching_row`'s metric) at the same residuals."""
    clean, corrupted, metric = _pair(model, row)
    df = attribution_patch(model, clean, corrupted, _resid_sites(model, row), metric)
    return df[["layer", "pos", "effect", "metric"]]
