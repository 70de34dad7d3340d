"""Attention: each head's pattern, and one head explained step by step from q·k to E' = E + ΔE."""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import guard, heatmap, labels, prompt_tokens, seed


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    if tokens is None:
        return state
    n = len(tokens)
    names = labels(tokens)
    cols = st.columns(3)
    layer = cols[0].selectbox("Layer", range(model.cfg.n_layers), key=seed("att_layer", state.layer))
    head = cols[1].selectbox("Head", range(model.cfg.n_heads), key=seed("att_head", state.head))
    key = seed("att_dest", state.dest % n if -n <= state.dest < n else n - 1)
    st.session_state[key] = min(st.session_state[key], n - 1)  # the prompt got shorter
    dest = cols[2].selectbox("Destination token", range(n), key=key, format_func=names.__getitem__)
    # The last token stays "the last token" when the prompt changes; other choices stay absolute.
    state = replace(state, layer=layer, head=head, dest=-1 if dest == n - 1 else dest)

    with guard():
        _patterns(state, layer, names)
    st.subheader(f"Explain head L{layer}H{head} at {names[dest]!r}")
    with guard():
        _explain(backend.explain_head(state.model, state.prompt, layer, head, dest), names)
    return state


def _patterns(state: ViewState, layer: int, names: list[str]) -> None:
    pattern = backend.attention_patterns(state.model, state.prompt, layer)  # [head, dest, src]
    n_heads, n, _ = pattern.shape
    df = pd.DataFrame(
        [
            {"head": f"H{h}", "destination": names[d], "source": names[s], "weight": float(pattern[h, d, s])}
            for h in range(n_heads)
            for d in range(n)
            for s in range(d + 1)  # causal: later sources are always 0
        ]
    )
    size = max(160, min(300, 28 * n))
    chart = (
        heatmap(df, "source", "destination", "weight", x_order=names, y_order=names, domain=(0, 1))
        .properties(width=size, height=size)
        .facet(facet=alt.Facet("head:N", title=None), columns=4)
    )
    st.markdown(f"**Attention patterns, layer {layer}** (rows: destination tokens; columns: source tokens)")
    st.altair_chart(chart)


def _explain(ex: backend.HeadExplanation, names: list[str]) -> None:
    d = ex.dest
    st.markdown(
        f"**1. Scores.** The query of {names[d]!r} is dotted with every source's key: $q_{{{d}}}\\cdot k_s$. "
        f"**2. Weights.** Scaled by $1/\\sqrt{{d_{{head}}}} = 1/\\sqrt{{{ex.d_head}}}$, masked (future tokens and "
        "any window), softmax: $\\mathrm{softmax}(QK^T/\\sqrt{d})$. "
        "**3. Weighted values.** Each source's value $v_s$ times its weight; their sum is $z$."
    )
    table = ex.sources[~ex.sources["masked"]].drop(columns=["masked"])
    left, right = st.columns([3, 2])
    left.dataframe(
        table,
        hide_index=True,
        column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns[2:]},
    )
    bars = (
        alt.Chart(table.assign(label=[names[p] for p in table["pos"]]))
        .mark_bar()
        .encode(
            x=alt.X("weight:Q", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("label:N", sort=names, title=None),
            tooltip=["label", alt.Tooltip("weight:Q", format=".4f")],
        )
        .properties(title="softmax(QKᵀ/√d) weights")
    )
    right.altair_chart(bars, width="stretch", height=36 * len(table) + 80)

    st.markdown(
        f"**4. The head's ΔE.** $z\\,W_O^{{h}}$ is what head {ex.head} writes into the residual stream at "
        f"{names[d]!r}. The layer's ΔE is the sum over its heads plus $b_O$. "
        "**5. E' = E + ΔE.** The residual stream after attention."
    )
    cols = st.columns(6)
    cols[0].metric("‖z‖", f"{ex.z_norm:.3f}")
    cols[1].metric("‖ΔE head‖", f"{ex.head_delta_norm:.3f}", help="‖z W_O[h]‖")
    cols[2].metric("‖ΔE layer‖", f"{ex.attn_delta_norm:.3f}", help="‖Σ_h z_h W_O[h] + b_O‖ = ‖attn_out‖")
    cols[3].metric("‖E‖", f"{ex.e_norm:.3f}", help="resid_pre at the destination")
    cols[4].metric("‖E'‖ = ‖E + ΔE‖", f"{ex.e_prime_norm:.3f}", help="resid_mid at the destination")
    cols[5].metric("head's share of ΔE", f"{ex.head_share:.1%}", help="ΔE_head · ΔE / ‖ΔE‖²")
    st.caption(
        f"cos(E, ΔE head) = {ex.cos_e_delta:+.3f}. The head's ΔE read through W_U (final norm ignored) "
        f"promotes {', '.join(map(repr, ex.promoted))}. Checks against the model's own activations: softmax "
        f"vs hook_pattern {ex.pattern_error:.1e}, Σ w·v vs hook_z {ex.z_error:.1e}, "
        f"E + ΔE vs resid_mid {ex.sum_error:.1e}."
    )
