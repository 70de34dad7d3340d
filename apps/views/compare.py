"""Compare two prompts side by side: the sidebar prompt and a second one (in the URL as `compare`), each
with its predictions, one head's attention and the logit lens (clean vs corrupted, English vs Chinese)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import guard, heatmap, labels, seed

PAGE_PX = 1150


def render(state: ViewState, model: ModelView) -> ViewState:
    second = st.text_input("Second prompt", key=seed("compare", state.compare))
    cols = st.columns(2)
    layer = cols[0].selectbox("Layer", range(model.cfg.n_layers), key=seed("cmp_layer", state.cmp_layer))
    head = cols[1].selectbox("Head", range(model.cfg.n_heads), key=seed("cmp_head", state.cmp_head))
    state = replace(state, compare=second, cmp_layer=layer, cmp_head=head)
    sides = st.columns(2, gap="large")
    for side, (name, prompt) in zip(sides, (("first", state.prompt), ("second", second)), strict=True):
        with side, guard():
            st.markdown(f"**{name.capitalize()}:** {prompt!r}")
            _column(state, model, prompt, layer, head, name)
    return state


def _column(state: ViewState, model: ModelView, prompt: str, layer: int, head: int, name: str) -> None:
    tokens = backend.str_tokens(state.model, prompt)
    names = labels(tokens)
    probs = backend.next_token_probs(state.model, prompt)
    top = np.argsort(-probs)[:8]
    st.dataframe(
        pd.DataFrame({"token": backend.decode(state.model, top.tolist()), "p": probs[top].astype(float)}),
        hide_index=True,
        key=f"compare_{name}_predictions",
        column_config={"p": st.column_config.NumberColumn(format="%.4f")},
    )
    pattern = backend.attention_patterns(state.model, prompt, layer)[head]
    df = pd.DataFrame(
        [{"destination": names[d], "source": names[s], "weight": float(pattern[d, s])}
         for d in range(len(names)) for s in range(d + 1)]
    )  # fmt: skip
    cell = (PAGE_PX / 2 - 130) / len(names)
    st.altair_chart(
        heatmap(df, "source", "destination", "weight", x_order=names, y_order=names, domain=(0, 1),
                title=f"L{layer}H{head} attention", cell_px=cell),
        width="stretch", height=max(16 * len(names), 200) + 120, key=f"compare_{name}_attention",
    )  # fmt: skip
    lens = backend.lens(state.model, prompt, None)
    lens = lens.assign(
        position=[names[p] for p in lens["pos"]],
        residual=[f"{i}: embeddings" if i == 0 else f"{i}: after L{i - 1}" for i in lens["layer"]],
    )
    rows = [f"{i}: embeddings" if i == 0 else f"{i}: after L{i - 1}" for i in range(model.cfg.n_layers + 1)]
    st.altair_chart(
        heatmap(lens, "position", "residual", "top_prob", x_order=names, y_order=rows, text="top_token",
                domain=(0, 1), title="Logit lens: top token", tooltip=["top_token"], cell_px=cell),
        width="stretch", height=36 * len(rows) + 150, key=f"compare_{name}_lens",
    )  # fmt: skip
