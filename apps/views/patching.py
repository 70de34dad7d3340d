"""Patching: run the corrupted prompt, restore one clean activation at a time, see what comes back."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import METRICS, SITES, ViewState
from apps.views import guard, heatmap, labels, seed, target_id, target_input

SITE_NAMES = {
    "resid": "Residual stream (resid_pre)",
    "attn": "Attention output",
    "mlp": "MLP output",
    "head": "Head outputs (all positions)",
}
METRIC_NAMES = {"logit_diff": "logit difference", "prob": "P(clean answer)"}


def render(state: ViewState, model: ModelView) -> ViewState:
    cols = st.columns(2)
    clean = cols[0].text_input("Clean prompt", key=seed("clean", state.clean))
    corrupted = cols[1].text_input("Corrupted prompt", key=seed("corrupted", state.corrupted))
    cols = st.columns([2, 2, 2])
    site = cols[0].selectbox("Site", SITES, key=seed("site", state.site), format_func=SITE_NAMES.get)
    metric = cols[1].radio(
        "Metric", METRICS, key=seed("metric", state.metric), format_func=METRIC_NAMES.get, horizontal=True
    )
    with cols[2]:
        state = target_input(
            replace(state, clean=clean, corrupted=corrupted, site=site, metric=metric), "Clean answer"
        )
    if not clean.strip() or not corrupted.strip():
        st.warning("Type both a clean and a corrupted prompt.")
        return state
    ok, target = target_id(state)
    if not ok:
        return state
    with guard():
        df = backend.patching(state.model, clean, corrupted, site, metric, target)
        a = df.attrs
        if a["same_answer"] and metric == "logit_diff":
            st.warning(
                f"Both prompts' answers are {a['answer']!r}: the logit difference is 0 everywhere. "
                "Pick a corrupted prompt with another answer, a clean answer token, or the probability metric."
            )
        cols = st.columns(3)
        cols[0].metric(f"{METRIC_NAMES[metric]}, clean", f"{a['source_metric']:.4f}")
        cols[1].metric(f"{METRIC_NAMES[metric]}, corrupted", f"{a['base_metric']:.4f}")
        cols[2].metric("Answers (clean / corrupted)", f"{a['answer']!r} / {a['wrong']!r}")
        st.caption(
            "Each cell: the corrupted run with that one activation copied from the clean run. Colour: "
            "normalised recovery, (M − M_corrupted) / (M_clean − M_corrupted): 1 = fully restored."
        )
        if site == "head":
            view = df.assign(x=[f"H{h}" for h in df["head"]], y=df["layer"].astype(str))
            x_order = [f"H{h}" for h in range(model.cfg.n_heads)]
        else:
            names = labels(backend.str_tokens(state.model, clean))
            view = df.assign(x=[names[p] for p in df["pos"]], y=df["layer"].astype(str))
            x_order = names
        chart = heatmap(
            view, "x", "y", "normalized", x_order=x_order, y_order=[str(i) for i in range(model.cfg.n_layers)],
            scheme="redblue", tooltip=["metric"],
        )  # fmt: skip
        st.altair_chart(chart, width="stretch", height=34 * model.cfg.n_layers + 110)
        st.dataframe(df, hide_index=True)
        st.download_button(
            "Download CSV", df.to_csv(index=False), file_name=f"patching_{site}.csv", mime="text/csv"
        )
    return state
