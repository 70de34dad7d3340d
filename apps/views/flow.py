"""Context flow: which source tokens feed which destination tokens, through which heads, layer by layer."""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import guard, labels, prompt_tokens, seed


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    if tokens is None:
        return state
    cols = st.columns([3, 1])
    threshold = cols[0].slider(
        "Contribution threshold",
        0.0,
        0.5,
        step=0.01,
        key=seed("threshold", state.threshold),
        help="Edges whose Ferrando & Voita importance (share of the destination's E + ΔE) is below this are hidden.",
    )
    residual = cols[1].checkbox("Residual edges", key=seed("flow_residual", True))
    state = replace(state, threshold=threshold)
    with guard():
        edges = backend.flow_edges(state.model, state.prompt, threshold)
        st.caption(
            "Columns are the residual stream entering each layer; an edge carries a source token's information "
            "into a destination token through one head (colour), or the token's own residual (grey). "
            f"{len(edges)} edges at or above {threshold:.2f}."
        )
        st.altair_chart(
            _graph(edges, tokens, model.cfg.n_layers, residual), width="stretch", height=40 * len(tokens) + 80
        )
        table = edges[edges["kind"] == "head"].sort_values("importance", ascending=False)
        table = table.assign(
            source=[tokens[s] for s in table["src"]], destination=[tokens[d] for d in table["dest"]]
        )
        st.dataframe(
            table[["layer", "head", "src", "source", "dest", "destination", "importance"]],
            hide_index=True,
            column_config={"importance": st.column_config.NumberColumn(format="%.3f")},
        )
    return state


def _graph(edges: pd.DataFrame, tokens: list[str], n_layers: int, residual: bool) -> alt.LayerChart:
    n = len(tokens)
    nodes = pd.DataFrame([{"x": x, "y": p} for x in range(n_layers + 1) for p in range(n)])
    keep = edges[(edges["kind"] == "head") | ((edges["kind"] == "residual") & residual)]
    lines = pd.DataFrame(
        {
            "x": keep["layer"].astype(int),
            "x2": keep["layer"].astype(int) + 1,
            "y": keep["src"].astype(int),
            "y2": keep["dest"].astype(int),
            "head": [
                f"H{h}" if k == "head" else "residual"
                for h, k in zip(keep["head"], keep["kind"], strict=True)
            ],
            "importance": keep["importance"],
            "edge": [
                f"L{layer} {tokens[s]!r} → {tokens[d]!r}"
                for layer, s, d in zip(keep["layer"], keep["src"], keep["dest"], strict=True)
            ],
        }
    )
    y = alt.Y("y:Q", scale=alt.Scale(domain=[-0.5, n - 0.5], reverse=True), axis=None)
    x = alt.X("x:Q", scale=alt.Scale(domain=[-1.2, n_layers + 0.2]), axis=None)
    heads = sorted(h for h in lines["head"].unique() if h != "residual")
    color = alt.Color(
        "head:N",
        scale=alt.Scale(domain=[*heads, "residual"], range=[*_PALETTE[: len(heads)], "#bbbbbb"]),
        legend=alt.Legend(orient="bottom", title=None),
    )
    rules = (
        alt.Chart(lines)
        .mark_rule(strokeCap="round")
        .encode(
            x=x,
            x2="x2:Q",
            y=y,
            y2="y2:Q",
            color=color,
            strokeWidth=alt.StrokeWidth(
                "importance:Q", scale=alt.Scale(domain=[0, 1], range=[0.5, 8]), legend=None
            ),
            opacity=alt.condition("datum.head == 'residual'", alt.value(0.35), alt.value(0.8)),
            tooltip=["edge", "head", alt.Tooltip("importance:Q", format=".3f")],
        )
    )
    dots = alt.Chart(nodes).mark_circle(size=40, color="#444").encode(x=x, y=y)
    names = pd.DataFrame({"x": -0.15, "y": range(n), "token": labels(tokens)})
    text = alt.Chart(names).mark_text(align="right", fontSize=12).encode(x=x, y=y, text="token:N")
    layer_names = pd.DataFrame(
        {"x": range(n_layers + 1), "y": -0.5, "label": [f"L{i}" for i in range(n_layers)] + ["out"]}
    )
    top = alt.Chart(layer_names).mark_text(baseline="bottom", color="#666").encode(x=x, y=y, text="label:N")
    return rules + dots + text + top


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]  # fmt: skip
