"""Fact tracing: where the model recalls a fact about the subject (ROME's causal tracing), and which MLP
layers and neurons carry it."""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import NEURON_POS, ViewState
from apps.views import guard, heatmap, labels, prompt_tokens, seed, target_id, target_input

KINDS = {"resid": "Hidden state (block output)", "mlp": "MLP output", "attn": "Attention output"}


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    suggestion = ""
    if tokens is not None:
        with guard():
            suggestion = backend.subject_suggestion(state.model, state.prompt)
    cols = st.columns([2, 2, 1])
    with cols[0]:
        typed = st.text_input(
            "Subject",
            key=seed("subject", state.subject),
            placeholder=suggestion or "part of the prompt",
            help="Part of the prompt the fact is about. Empty: suggested from the prompt (the longest name "
            "the model's world knows in it).",
        )
    subject = typed or suggestion
    if not typed and subject:
        cols[0].caption(f"Tracing the suggested subject {subject!r}.")
    with cols[1]:
        state = target_input(replace(state, subject=typed), "Answer token", "answer")
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
    ok, target = target_id(state, "answer")
    if not ok:
        return state
    with guard():
        start, end = backend.subject_tokens(state.model, state.prompt, subject)
        _traces(state, subject, tokens, target, (start, end))
        st.subheader("MLP layers: ablation effects and top neurons")
        state = _mlp_layers(state, subject, model, tokens, target, end - 1)
    return state


def _traces(
    state: ViewState, subject: str, tokens: list[str], target: int | None, span: tuple[int, int]
) -> None:
    start, end = span
    traces = {
        kind: backend.trace(
            state.model, state.prompt, subject, target, kind, 1 if kind == "resid" else state.window
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
        "state at one (layer, position). Colour: indirect effect, P(restored) − P(noised), on one scale "
        "shared by the three maps (white: no effect; orange, when any: restoring lowered P). * marks the "
        "subject."
    )
    names = [f"{n}*" if start <= i < end else n for i, n in enumerate(labels(tokens))]
    layers = [str(x) for x in range(len(traces["resid"]["layer"].unique()))]
    effects = [v for df in traces.values() for v in df["indirect_effect"]]
    # Zero is white. Purples from 0 up while every effect is ≥ 0; once one is negative (restoring hurt), a
    # diverging scale symmetric about 0, orange below: "no effect" never looks like a strong one.
    top = max(max(effects), 1e-6)
    negative = min(effects) < -1e-3 * top
    bound = max(top, -min(effects))
    domain, scheme = ((-bound, bound), "purpleorange") if negative else ((0.0, top), "purples")
    # Wide enough to read: at least 18 px a position; a long prompt puts one map per row.
    per_row = 3 if len(tokens) <= 12 else 1
    width = max(22 * len(tokens) + 160, 360)
    for i, (kind, df) in enumerate(traces.items()):
        if i % per_row == 0:
            cols = st.columns(per_row)
        df = df.assign(position=[names[p] for p in df["pos"]], layer=df["layer"].astype(str))
        chart = heatmap(
            df, "position", "layer", "indirect_effect", x_order=names, y_order=layers, title=KINDS[kind],
            scheme=scheme, domain=domain, reverse=negative, tooltip=["p_restored"],
            cell_px=(width - 130) / len(tokens),  # the legend and the axis take about 130 px
        )  # fmt: skip
        cols[i % per_row].altair_chart(chart, width=width, height=34 * len(layers) + 130)


def _mlp_layers(
    state: ViewState, subject: str, model: ModelView, tokens: list[str], target: int | None, last_subject: int
) -> ViewState:
    effects = backend.mlp_ablation_effects(state.model, state.prompt, subject, target)
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
        layer = cols[0].selectbox(
            "Layer", range(model.cfg.n_layers), key=seed("trace_layer", state.trace_layer)
        )
        where = cols[1].radio(
            "Neurons at", NEURON_POS, key=seed("neuron_pos", state.neuron_pos), horizontal=True
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
    return replace(state, trace_layer=int(layer), neuron_pos=where)


def _wide(effects: pd.DataFrame) -> pd.DataFrame:
    return effects.pivot(index="layer", columns="where", values="p_answer").reset_index()
