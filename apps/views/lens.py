"""Logit lens: the residual stream after each layer, read out as if it were the last one.

Three maps share one row label, "<lens layer>: <which residual>", which is also the table's `residual`
column: the top token, the target's log-probability and the target's rank.
"""

from __future__ import annotations

import math

import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import export_buttons, guard, heatmap, labels, prompt_tokens, target_id, target_input

PAGE_PX = 1150  # the wide layout's usable width, about, at a 1600 px window


def row_label(layer: int) -> str:
    """Lens row `layer` (0 = the embeddings, l = after block l − 1), as maps and table both name it."""
    return f"{layer}: embeddings" if layer == 0 else f"{layer}: after L{layer - 1}"


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    state = target_input(state, "Target token (log-probability and rank maps)", "lens_target")
    if tokens is None:
        return state
    ok, target = target_id(state, "lens_target")
    if not ok:
        return state
    with guard():
        df = backend.lens(state.model, state.prompt, target)
        names = labels(tokens)
        df = df.assign(
            position=[names[p] for p in df["pos"]],
            residual=[row_label(layer) for layer in df["layer"]],
            target_logprob=[math.log(max(p, 1e-45)) for p in df["target_prob"]],
            log_rank=[math.log10(r + 1) for r in df["target_rank"]],
            logprob_text=[f"{math.log(max(p, 1e-45)):.1f}" for p in df["target_prob"]],
            rank_text=[str(r) for r in df["target_rank"]],
        )
        rows = [row_label(layer) for layer in range(model.cfg.n_layers + 1)]
        height = 36 * len(rows) + 150  # pixels; rotated token labels below
        cell = (PAGE_PX - 130) / len(tokens)
        st.caption(
            "Each row reads the residual stream after a block through the final norm and W_U, as if it were "
            "the last; the last row is the model's real output. Row labels are the table's `residual` "
            "column (`layer` = the number before the colon). Cell text: the top token."
        )
        common = dict(x_order=names, y_order=rows, cell_px=cell)
        top_map = heatmap(df, "position", "residual", "top_prob", text="top_token", domain=(0, 1),
                    title="Top token and its probability", tooltip=["top_token"], **common)  # fmt: skip
        st.altair_chart(top_map, width="stretch", height=height, key="lens_top")
        export_buttons(top_map, "lens_top")
        what = repr(state.lens_target) if target is not None else "the final top token at each position"
        floor = min(-1.0, float(df["target_logprob"].min()))
        # Side by side while cells stay at least 40 px wide; else one under the other, full width.
        half = (PAGE_PX / 2 - 130) / len(tokens) >= 40
        left, right = st.columns(2) if half else (st.container(), st.container())
        narrow = cell / 2 if half else cell
        logprob_map = heatmap(df, "position", "residual", "target_logprob", text="logprob_text", scheme="oranges",
                    domain=(floor, 0.0), title=f"log P({what})", color_title="log P",
                    tooltip=["target_token", "target_prob", "target_rank"], **{**common, "cell_px": narrow})  # fmt: skip
        with left:
            st.altair_chart(logprob_map, width="stretch", height=height, key="lens_logprob")
            export_buttons(logprob_map, "lens_logprob")
        top_rank = max(1.0, float(df["log_rank"].max()))
        rank_map = heatmap(df, "position", "residual", "log_rank", text="rank_text", scheme="greens", reverse=True,
                    domain=(0.0, top_rank), title=f"Rank of {what} (0 = top)", color_title="log10(rank+1)",
                    tooltip=["target_token", "target_rank", "target_prob"], **{**common, "cell_px": narrow})  # fmt: skip
        with right:
            st.altair_chart(rank_map, width="stretch", height=height, key="lens_rank")
            export_buttons(rank_map, "lens_rank")
        with st.expander("Table", expanded=False):
            cols = ["layer", "residual", "pos", "token", "top_token", "top_prob", "target_token",
                    "target_prob", "target_logprob", "target_rank", "kl_to_final"]  # fmt: skip
            st.dataframe(df[cols], hide_index=True, key="lens_table")
    return state
