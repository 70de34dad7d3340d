"""Attention: each head's pattern, and one head explained step by step from q·k to E' = E + ΔE."""

from __future__ import annotations

import html
import unicodedata
from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import export_buttons, guard, labels, prompt_tokens, seed
from apps.views import update as residual_update


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    if tokens is None:
        return state
    n = len(tokens)
    names = labels(tokens)
    all_layers = st.toggle("All layers at once (small multiples)", key=seed("att_all", state.att_all))
    state = replace(state, att_all=all_layers)
    cols = st.columns(3)
    layer = cols[0].selectbox("Layer", range(model.cfg.n_layers), key=seed("att_layer", state.layer))
    head = cols[1].selectbox("Head", range(model.cfg.n_heads), key=seed("att_head", state.head))
    key = seed("att_dest", state.dest % n if -n <= state.dest < n else n - 1)
    st.session_state[key] = min(st.session_state[key], n - 1)  # the prompt got shorter
    dest = cols[2].selectbox("Destination token", range(n), key=key, format_func=names.__getitem__)
    # The last token stays "the last token" when the prompt changes; other choices stay absolute.
    state = replace(state, layer=layer, head=head, dest=-1 if dest == n - 1 else dest)

    with guard():
        _patterns(state, layer, names, all_layers, model.cfg.n_layers)
    with guard():
        pattern = backend.attention_patterns(state.model, state.prompt, layer)
        st.caption(
            f"The prompt coloured by L{layer}H{head}'s attention from {names[dest]!r} (outlined); struck "
            "through: masked, never attended."
        )
        st.markdown(_coloured_prompt(tokens, pattern[head, dest], dest), unsafe_allow_html=True)
    st.subheader(f"Explain head L{layer}H{head} at {names[dest]!r}")
    with guard():
        _explain(backend.explain_head(state.model, state.prompt, layer, head, dest), names)
    return residual_update.render(state, model.cfg.n_layers, layer, dest, names)


def _pattern_frame(pattern, names: list[str], head_label) -> pd.DataFrame:
    """Every (head, dest, src) cell; masked = the model gave it exactly 0 (causal or window mask)."""
    n_heads, n, _ = pattern.shape
    return pd.DataFrame(
        [
            {
                "head": head_label(h),
                "destination": names[d],
                "source": names[s],
                "weight": float(pattern[h, d, s]),
                "masked": s > d or float(pattern[h, d, s]) == 0.0,
            }
            for h in range(n_heads)
            for d in range(n)
            for s in range(n)
        ]
    )


def _grid(df: pd.DataFrame, names: list[str], cell: int, facet: alt.Facet, columns: int, labelled: bool):
    """Masked cells are grey, never a pale blue: a weight of 0.001 and a forbidden source look different.

    With `labelled`, a strip of the prompt's tokens sits on top: hovering a token outlines its row (what it
    attends to) and its column (what attends to it) in every head. Each head draws its own axes, with every
    label (none culled)."""
    font = 9 if cell < 14 else 10
    axis = alt.Axis(labelFontSize=font, labelLimit=90, labelOverlap=False) if labelled else None
    x_axis = (
        alt.Axis(labelFontSize=font, labelLimit=90, labelOverlap=False, labelAngle=-90) if labelled else None
    )
    enc = {
        "x": alt.X("source:O", sort=names, title=None, axis=x_axis),
        "y": alt.Y("destination:O", sort=names, title=None, axis=axis),
    }
    rows = alt.selection_point(name="hover_dest", fields=["destination"], on="pointerover", empty=False,
                               clear="pointerout")  # fmt: skip
    cols = alt.selection_point(name="hover_src", fields=["source"], on="pointerover", empty=False,
                               clear="pointerout")  # fmt: skip
    lit = rows | cols
    weights = (
        alt.Chart()
        .mark_rect()
        .encode(
            **enc,
            color=alt.Color("weight:Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
            stroke=alt.condition(lit, alt.value("#e4572e"), alt.value(None)) if labelled else alt.value(None),
            strokeWidth=alt.value(1.5),
            tooltip=["head", "destination", "source", alt.Tooltip("weight:Q", format=".4f")],
        )
        .transform_filter("!datum.masked")
    )
    masked = (
        alt.Chart()
        .mark_rect(color="#d9d9d9", stroke="#f4f4f4", strokeWidth=0.5)
        .encode(**enc, tooltip=["head", "destination", "source", alt.Tooltip("masked:N", title="masked")])
        .transform_filter("datum.masked")
    )
    size = cell * len(names)
    grid = (
        alt.layer(masked, weights, data=df)
        .properties(width=size, height=size)
        .facet(facet=facet, columns=columns)
        .resolve_axis(x="independent", y="independent")
    )
    if not labelled:
        return grid
    # A token lies flat only when its label fits its band; otherwise every label stands upright, so
    # neighbours never overlap (a CJK character is about twice as wide as a Latin letter).
    widest = max(_label_px(name, 11) for name in names)
    upright = widest > cell - 2
    strip = (
        alt.Chart(pd.DataFrame({"destination": names, "source": names}), title="Hover a token:")
        .mark_text(fontSize=11, angle=270 if upright else 0, align="right" if upright else "center")
        .encode(
            x=alt.X("source:O", sort=names, axis=None),
            y=alt.value(0 if upright else 10),  # an upright label hangs from the strip's top edge
            text="source:N",
            color=alt.condition(lit, alt.value("#e4572e"), alt.value("#333")),
        )
        .add_params(rows, cols)
        .properties(width=min(size, PAGE_PX - 150), height=min(widest, 90) + 6 if upright else 20)
    )
    chart = alt.vconcat(strip, grid)
    if len(df) <= 6000:  # SVG marks can be found by a test (and a screen reader); canvas is faster when big
        chart = chart.properties(usermeta={"embedOptions": {"renderer": "svg"}})
    return chart


def _label_px(text: str, font: int) -> int:
    """About how many pixels `text` takes at `font` px: wide (CJK) characters count double."""
    return int(sum(font if unicodedata.east_asian_width(c) in "WF" else 0.6 * font for c in text)) + 2


PAGE_PX = 1150  # the wide layout's usable width, about, at a 1600 px window


def _patterns(state: ViewState, layer: int, names: list[str], all_layers: bool, n_layers: int) -> None:
    n = len(names)
    if all_layers:
        frames = [
            _pattern_frame(
                backend.attention_patterns(state.model, state.prompt, i), names, lambda h, i=i: f"L{i}H{h}"
            )
            for i in range(n_layers)
        ]
        df = pd.concat(frames, ignore_index=True)
        n_heads = df["head"].nunique() // n_layers
        cell = max(2, min(12, 200 // n))
        columns = n_heads
        chart = _grid(
            df, names, cell, alt.Facet("head:N", title=None, sort=list(df["head"].unique())), n_heads, False
        )
        st.markdown(
            f"**Attention patterns, all {n_layers} layers** (rows: layers; columns: heads; grey: masked)"
        )
    else:
        pattern = backend.attention_patterns(state.model, state.prompt, layer)  # [head, dest, src]
        df = _pattern_frame(pattern, names, lambda h: f"H{h}")
        # Cells stay readable at any length (at least 10 px); as many heads a row as fit the page, the rest
        # on further rows of the scrollable box, so no head is ever off-screen to the right.
        cell = max(12, min(28, 600 // n))
        columns = max(1, PAGE_PX // (cell * n + 110))
        chart = _grid(df, names, cell, alt.Facet("head:N", title=None), columns, True)
        st.markdown(
            f"**Attention patterns, layer {layer}** (rows: destination tokens; columns: source tokens; "
            "grey: masked, never attended)"
        )
    rows = -(-df["head"].nunique() // (n_layers if all_layers else columns))
    tall = rows * (cell * n + 60) > 900
    with st.container(height=900 if tall else "content", key="attention_grid"):
        st.altair_chart(chart, width="content")
    export_buttons(chart, f"attention_L{layer}" if not all_layers else "attention_all")


def _coloured_prompt(tokens: list[str], weights, dest: int) -> str:
    """The prompt as text, each token's background its attention weight from `dest` (masked: struck grey)."""
    spans = []
    for i, (token, w) in enumerate(zip(tokens, weights, strict=True)):
        text = html.escape(token).replace(" ", "&nbsp;") or "&nbsp;"
        style = f"background: rgba(31, 119, 180, {float(w):.3f}); color: {'white' if w > 0.5 else 'black'}"
        if i > dest or float(w) == 0.0:
            style = "color: #999; text-decoration: line-through"
        if i == dest:
            style += "; outline: 2px solid #e4572e"
        spans.append(
            f'<span class="attn-token" title="{i}: {float(w):.4f}" data-weight="{float(w):.6f}" style="{style}">{text}</span>'
        )
    return f'<div class="attn-prompt" style="font-family: monospace; line-height: 1.9">{"".join(spans)}</div>'


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
