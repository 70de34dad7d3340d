"""Fact tracing: where the model recalls a fact about the subject (ROME's causal tracing), and which MLP
layers and neurons carry it."""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import guard, heatmap, labels, prompt_tokens, seed, target_id, target_input

KINDS = {"resid": "Hidden state (block output)", "mlp": "MLP output", "attn": "Attention output"}


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    cols = st.columns([2, 2, 1])
    with cols[0]:
        subject = st.text_input(
            "Subject", key=seed("subject", state.subject), help="Part of the prompt, e.g. France"
        )
    with cols[1]:
        state = target_input(replace(state, subject=subject), "Answer token")
    window = cols[2].number_input(
        "Window (MLP, attn)",
        1,
        model.cfg.n_layers,
        key=seed("window", min(state.window, model.cfg.n_layers)),
        help="Restore this many layers around each layer at once (ROME uses 10 of 48).",
    )
    state = replace(state, window=int(window))
    if tokens is None:
        return state
    ok, target = target_id(state)
    if not ok:
        return state
    with guard():
        start, end = backend.subject_tokens(state.model, state.prompt, state.subject)
        _traces(state, tokens, target, (start, end))
        st.subheader("MLP layers: ablation effects and top neurons")
        state = _mlp_layers(state, model, tokens, target, end - 1)
    return state


def _traces(state: ViewState, tokens: list[str], target: int | None, span: tuple[int, int]) -> None:
    start, end = span
    traces = {
        kind: backend.trace(
            state.model, state.prompt, state.subject, target, kind, 1 if kind == "resid" else state.window
        )
        for kind in KINDS
    }
    attrs = traces["resid"].attrs
    answer = backend.decode(state.model, [attrs["target"]])[0]
    cols = st.columns(4)
    span_text = str(start) if end - start == 1 else f"{start}–{end - 1}"
    cols[0].metric("Subject tokens", span_text, help=repr("".join(tokens[start:end])))
    cols[1].metric(f"P({answer!r}) clean", f"{attrs['p_clean']:.4f}")
    cols[2].metric(f"P({answer!r}) subject noised", f"{attrs['p_corrupted']:.4f}")
    cols[3].metric("Total effect", f"{attrs['total_effect']:+.4f}")
    st.caption(
        "Gaussian noise (3× the embedding std, 10 samples) on the subject tokens; each cell restores one clean "
        "state at one (layer, position). Colour: indirect effect, P(restored) − P(noised). * marks the subject."
    )
    names = [f"{n}*" if start <= i < end else n for i, n in enumerate(labels(tokens))]
    layers = [str(x) for x in range(len(traces["resid"]["layer"].unique()))]
    cols = st.columns(3)
    for col, (kind, df) in zip(cols, traces.items(), strict=True):
        df = df.assign(position=[names[p] for p in df["pos"]], layer=df["layer"].astype(str))
        chart = heatmap(
            df, "position", "layer", "indirect_effect", x_order=names, y_order=layers, title=KINDS[kind],
            scheme="purples", tooltip=["p_restored"],
        )  # fmt: skip
        col.altair_chart(chart, width="stretch", height=34 * len(layers) + 130)


def _mlp_layers(
    state: ViewState, model: ModelView, tokens: list[str], target: int | None, last_subject: int
) -> ViewState:
    effects = backend.mlp_ablation_effects(state.model, state.prompt, state.subject, target)
    answer = backend.decode(state.model, [effects.attrs["answer"]])[0]
    pick = alt.selection_point(fields=["layer"], name="pick")
    chart = (
        alt.Chart(effects, title=f"One MLP layer zero-ablated: Δ P({answer!r})")
        .mark_bar()
        .encode(
            x=alt.X("layer:O"),
            xOffset="where:N",
            y=alt.Y("effect:Q", title="Δ P(answer)"),
            color=alt.Color("where:N", legend=alt.Legend(orient="bottom", title=None)),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.4)),
            tooltip=[
                "layer",
                "where",
                alt.Tooltip("p_answer:Q", format=".4f"),
                alt.Tooltip("effect:Q", format="+.4f"),
            ],
        )
        .add_params(pick)
    )
    left, right = st.columns([2, 3])
    with left:
        st.caption("Click a bar to list that layer's neurons.")
        event = st.altair_chart(chart, on_select="rerun", key="mlp_effects", width="stretch")
    picked = [p["layer"] for p in (event.selection.get("pick") or []) if "layer" in p] if event else []
    if picked and st.session_state.get("_picked_layer") != picked[0]:
        st.session_state["_picked_layer"] = picked[0]  # a new click; the selectbox follows it once
        st.session_state["trace_layer"] = int(picked[0])
    with right:
        cols = st.columns(2)
        layer = cols[0].selectbox("Layer", range(model.cfg.n_layers), key=seed("trace_layer", state.layer))
        where = cols[1].radio(
            "Neurons at",
            ["last subject token", "last token"],
            key=seed("neuron_pos", "last subject token"),
            horizontal=True,
        )
        pos = last_subject if where == "last subject token" else len(tokens) - 1
        neurons = backend.layer_neurons(state.model, state.prompt, layer, pos, effects.attrs["answer"])
        st.markdown(
            f"**Most active neurons of MLP {layer} at {labels(tokens)[pos]!r}**, with the tokens their value vectors promote"
        )
        st.dataframe(
            neurons,
            hide_index=True,
            column_config={
                "activation": st.column_config.NumberColumn(format="%.3f"),
                "target_logit": st.column_config.NumberColumn(f"logit({answer!r})", format="%+.3f"),
            },
        )
    with left:
        st.dataframe(_wide(effects), hide_index=True)
    return replace(state, layer=int(layer))


def _wide(effects: pd.DataFrame) -> pd.DataFrame:
    return effects.pivot(index="layer", columns="where", values="p_answer").reset_index()
