"""Logit lens: the residual stream after each layer, read out as if it were the last one."""

from __future__ import annotations

import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import guard, heatmap, labels, prompt_tokens, target_id, target_input


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    state = target_input(state, "Target token (for the second map)")
    if tokens is None:
        return state
    ok, target = target_id(state)
    if not ok:
        return state
    with guard():
        df = backend.lens(state.model, state.prompt, target)
        names = labels(tokens)
        df = df.assign(
            position=[names[p] for p in df["pos"]],
            after=[f"after L{layer - 1}" if layer else "embeddings" for layer in df["layer"]],
        )
        rows = ["embeddings"] + [f"after L{layer}" for layer in range(model.cfg.n_layers)]
        height = 36 * len(rows) + 120  # pixels; rotated token labels below
        st.caption(
            "Each row reads the residual stream after a block through the final norm and W_U, as if it were "
            "the last; the last row is the model's real output. Cell text: the top token."
        )
        st.altair_chart(
            heatmap(
                df,
                "position",
                "after",
                "top_prob",
                x_order=names,
                y_order=rows,
                text="top_token",
                title="Top token and its probability",
                domain=(0, 1),
                tooltip=["top_token"],
            ),
            width="stretch",
            height=height,
        )
        what = repr(state.target) if target is not None else "the final top token at each position"
        st.altair_chart(
            heatmap(
                df,
                "position",
                "after",
                "target_prob",
                x_order=names,
                y_order=rows,
                text="target_token",
                title=f"Probability of {what}",
                scheme="oranges",
                domain=(0, 1),
                tooltip=["target_token", "target_rank"],
            ),
            width="stretch",
            height=height,
        )
        with st.expander("Table"):
            st.dataframe(
                df[
                    [
                        "layer",
                        "pos",
                        "token",
                        "top_token",
                        "top_prob",
                        "target_token",
                        "target_prob",
                        "target_rank",
                        "kl_to_final",
                    ]
                ],
                hide_index=True,
            )
    return state
