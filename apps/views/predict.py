"""Predict & ablate: the top next tokens, and what removing heads, layers or neurons does to them."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from apps import backend
from apps.model_view import ModelView
from apps.state import METHODS, ViewState, format_neurons, parse_neurons
from apps.views import guard, labels, prompt_tokens, seed, target_id, target_input

METHOD_HELP = {
    "zero": "the activation becomes 0",
    "mean": "the mean over the reference prompts, per position",
    "resample": "the activation of a random reference prompt (seed 0)",
}


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    controls, results = st.columns([2, 3], gap="large")
    with controls:
        state = _controls(state, model, tokens)
    if tokens is None:
        return state
    with results:
        _results(state)
    return state


def _controls(state: ViewState, model: ModelView, tokens: list[str] | None) -> ViewState:
    st.subheader("Ablate")
    st.caption("Tick heads, whole attention layers and MLP layers; add single neurons below.")
    # A layer x head grid: one row per layer, then whole-layer switches for attention and the MLP.
    widths = [0.8] + [1] * model.cfg.n_heads + [1, 1]
    for col, name in zip(
        st.columns(widths), ["", *(f"H{h}" for h in range(model.cfg.n_heads)), "attn", "MLP"], strict=True
    ):
        col.markdown(f"**{name}**")
    heads, attn, mlp = [], [], []
    for layer in range(model.cfg.n_layers):
        cols = st.columns(widths, vertical_alignment="center")
        cols[0].markdown(f"**L{layer}**")
        for h in range(model.cfg.n_heads):
            if _switch(cols[1 + h], f"head_{layer}_{h}", f"L{layer}H{h}", (layer, h) in state.heads):
                heads.append((layer, h))
        if _switch(cols[-2], f"attn_{layer}", f"L{layer} attention", layer in state.attn):
            attn.append(layer)
        if _switch(cols[-1], f"mlp_{layer}", f"L{layer} MLP", layer in state.mlp):
            mlp.append(layer)
    state = replace(state, heads=tuple(heads), attn=tuple(attn), mlp=tuple(mlp))

    text = st.text_input(
        "Neurons",
        key=seed("neurons", format_neurons(state.neurons)),
        placeholder="L2N117, L3N5",
        help=f"Layer and index of MLP neurons (d_mlp = {model.cfg.d_mlp}), comma separated.",
    )
    try:
        state = replace(state, neurons=parse_neurons(text))
    except ValueError as e:
        st.warning(f"Neurons: {e}")

    method = st.radio(
        "Method",
        METHODS,
        key=seed("method", state.method),
        horizontal=True,
        captions=[METHOD_HELP[m] for m in METHODS],
    )
    state = replace(state, method=method)
    if tokens is not None:
        n = len(tokens)
        key = seed("positions", [p % n for p in state.positions if -n <= p < n])
        st.session_state[key] = [p for p in st.session_state[key] if p < n]  # the prompt got shorter
        positions = st.multiselect(
            "Positions",
            range(len(tokens)),
            key=key,
            format_func=lambda p: labels(tokens)[p],
            placeholder="every position",
        )
        state = replace(state, positions=tuple(sorted(positions)))
    if method != "zero":
        ref = st.text_area(
            "Reference prompts (one per line)", key=seed("reference", state.reference), height=120
        )
        state = replace(state, reference=ref)
    return target_input(state)


def _switch(col: DeltaGenerator, key: str, label: str, on: bool) -> bool:
    """One grid cell: a checkbox whose label shows on hover (the row and column headers say the rest)."""
    return col.checkbox(label, key=seed(key, on), label_visibility="collapsed", help=label)


def _results(state: ViewState) -> None:
    ok, target = target_id(state)
    if not ok:
        return
    ablation = backend.ablation_of(state)
    if ablation and ablation.method != "zero":
        with guard():
            usable, skipped = backend.reference_prompts(state.model, state.prompt, ablation.reference)
            note = f" ({len(skipped)} of another length left out)" if skipped else ""
            st.caption(f"Reference: {len(usable)} prompts{note}.")
    with guard():
        df = backend.compare(state.model, state.prompt, ablation, target)
        _summary(df, bool(ablation))
        _chart(df)
        st.dataframe(
            df.drop(columns=["target"]),
            hide_index=True,
            column_config={
                c: st.column_config.NumberColumn(format="%.4f") for c in ("p_before", "p_after", "change")
            },
        )
        _continuation(state, ablation)


def _summary(df: pd.DataFrame, ablated: bool) -> None:
    row = df[df["target"]].iloc[0]
    cols = st.columns(3)
    cols[0].metric(f"P({row['token']!r}) before", f"{row['p_before']:.4f}")
    cols[1].metric(
        f"P({row['token']!r}) after ablation" if ablated else f"P({row['token']!r}), nothing ablated",
        f"{row['p_after']:.4f}",
        delta=f"{row['change']:+.4f}" if ablated else None,
    )
    top_after = df.loc[df["p_after"].idxmax()]
    cols[2].metric("Top token after", repr(top_after["token"]), help=f"p = {top_after['p_after']:.4f}")


def _chart(df: pd.DataFrame) -> None:
    """Before/after probabilities and their change, as plain Vega-Lite specs.

    This view reruns on every tick of the ablation grid; Altair validates each chart against the
    Vega-Lite JSON schema as it is built, which took most of a rerun (~40 ms of ~80 ms, measured).
    """
    labels = df["token"].map(repr).tolist()
    n = len(df)
    long = pd.DataFrame(
        {"label": labels * 2, "run": ["before"] * n + ["after"] * n, "p": [*df["p_before"], *df["p_after"]]}
    )
    y = {"field": "label", "type": "nominal", "sort": labels, "title": None}
    probs = {
        "title": "P(next token): before and after",
        "mark": {"type": "bar"},
        "encoding": {
            "y": y,
            "x": {"field": "p", "type": "quantitative", "title": "probability"},
            "yOffset": {"field": "run", "type": "nominal", "sort": ["before", "after"]},
            "color": {
                "field": "run",
                "type": "nominal",
                "scale": {"domain": ["before", "after"], "range": ["#9ecae1", "#d6604d"]},
                "legend": {"orient": "top", "title": None},
            },
            "tooltip": [
                {"field": "label"},
                {"field": "run"},
                {"field": "p", "type": "quantitative", "format": ".4f"},
            ],
        },
    }
    change = {
        "title": "Change (after − before)",
        "mark": {"type": "bar"},
        "encoding": {
            "y": y,
            "x": {
                "field": "change",
                "type": "quantitative",
                "title": "Δ probability",
                "axis": {"format": "+.2f"},
            },
            "color": {"condition": {"test": "datum.change < 0", "value": "#d6604d"}, "value": "#4393c3"},
            "stroke": {"condition": {"test": "datum.target", "value": "black"}, "value": None},
            "tooltip": [{"field": "label"}, {"field": "change", "type": "quantitative", "format": "+.4f"}],
        },
    }
    height = 28 * n + 90  # pixels, title and axis included: one readable row per token
    left, right = st.columns([3, 2])
    left.vega_lite_chart(long, probs, width="stretch", height=height)
    right.vega_lite_chart(
        df[["change", "target"]].assign(label=labels), change, width="stretch", height=height
    )


def _continuation(state: ViewState, ablation: backend.Ablation) -> None:
    cols = st.columns([1, 2])
    n = cols[0].number_input("New tokens", 1, 32, key=seed("n_new", 8))
    request = (state.model, state.prompt, ablation, int(n))
    if cols[1].button("Continue ▶", help="Greedy generation with and without the ablation"):
        st.session_state["_continued"] = request
    if st.session_state.get("_continued") != request:
        return  # shown from the click until the inputs change
    plain, ablated = backend.continuation(*request)
    left, right = st.columns(2)
    left.markdown("**Unablated**")
    left.code(state.prompt + plain, language=None, wrap_lines=True)
    right.markdown("**With the ablation**" if ablation else "**With the ablation** (nothing ablated)")
    right.code(state.prompt + ablated, language=None, wrap_lines=True)
