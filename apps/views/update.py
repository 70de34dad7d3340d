"""The attention view's E' = E + ΔE section: per layer at the selected token, the residual before and after
attention read as tokens, and the selected layer's ΔE split by head (computed in interp.analysis.update)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from apps import backend
from apps.state import ViewState
from apps.views import guard, target_id, target_input


def render(state: ViewState, n_layers: int, layer: int, dest: int, names: list[str]) -> ViewState:
    st.subheader(f"E' = E + ΔE in tokens at {names[dest]!r}")
    state = target_input(state, "Target token (direct logit attribution)", "update_target")
    ok, target = target_id(state, "update_target")
    if not ok:
        return state
    with guard():
        updates = [
            backend.residual_update(state.model, state.prompt, i, dest, target) for i in range(n_layers)
        ]
        word = updates[0].target
        what = (
            repr(state.update_target) if target is not None else f"the top prediction {_tok(state, word)!r}"
        )
        st.caption(
            "E is the residual entering the layer (resid_pre), ΔE what its attention adds (attn_out), "
            "E' = E + ΔE (resid_mid). Each is read through the final norm and W_U as if it were the last "
            f"residual (logit lens). Target: {what}."
        )
        st.dataframe(_layers_table(updates), hide_index=True, key="update_layers")
        u = updates[layer]
        st.markdown(
            f"**Layer {layer}: ΔE split by head.** Each head writes z·W_O[h]; with b_O they sum to ΔE "
            f"(max error {u.parts_error:.1e} against the model's attn_out; E + ΔE vs resid_mid "
            f"{u.sum_error:.1e}). Direct logit attribution (DLA) to the target: the part's dot product with "
            "the target's unembedding, the final norm frozen at this position's scale."
        )
        parts = u.parts.assign(promotes=[" ".join(map(repr, p)) for p in u.parts["promotes"]])
        left, right = st.columns([2, 3])
        left.altair_chart(_dla_bars(parts), width="stretch", height=32 * len(parts) + 70)
        right.dataframe(
            parts[["part", "norm", "share", "dla", "promotes"]],
            hide_index=True,
            key="update_parts",
            column_config={
                "norm": st.column_config.NumberColumn("‖ΔE_h‖", format="%.3f"),
                "share": st.column_config.NumberColumn("share of ΔE", format="%.3f"),
                "dla": st.column_config.NumberColumn("DLA", format="%+.3f"),
                "promotes": st.column_config.TextColumn("tokens it promotes (direct)"),
            },
        )
    return state


def _tok(state: ViewState, token: int) -> str:
    return backend.decode(state.model, [token])[0]


def _layers_table(updates: list[backend.ResidualUpdate]) -> pd.DataFrame:
    rows = []
    for u in updates:
        e, e2 = u.lens.iloc[0], u.lens.iloc[1]
        rows.append(
            {
                "layer": u.layer,
                "E top": f"{e['top_tokens'][0]!r} {e['top_probs'][0]:.2f}",
                "E' top": f"{e2['top_tokens'][0]!r} {e2['top_probs'][0]:.2f}",
                "log P(target) E → E'": f"{e['target_logprob']:.2f} → {e2['target_logprob']:.2f}",
                "rank E → E'": f"{e['target_rank']} → {e2['target_rank']}",
                "cos(E, E')": round(u.cos, 3),
                "‖ΔE‖/‖E‖": round(u.ratio, 3),
                "top head (DLA)": u.parts.loc[u.parts["dla"].abs().idxmax(), "part"],
            }
        )
    return pd.DataFrame(rows)


def _dla_bars(parts: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(parts, title="DLA to the target, per head")
        .mark_bar()
        .encode(
            x=alt.X("dla:Q", title="direct logit attribution"),
            y=alt.Y("part:N", sort=list(parts["part"]), title=None),
            color=alt.condition("datum.dla >= 0", alt.value("#1f77b4"), alt.value("#d62728")),
            tooltip=["part", alt.Tooltip("dla:Q", format="+.3f"), alt.Tooltip("norm:Q", format=".3f")],
        )
    )
