"""Context flow: which source tokens feed which destination tokens, through which heads, layer by layer."""

from __future__ import annotations

from dataclasses import replace

import altair as alt
import pandas as pd
import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import export_buttons, guard, labels, prompt_tokens, seed


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
    residual = cols[1].checkbox("Residual edges", key=seed("flow_residual", state.flow_residual))
    state = replace(state, threshold=threshold, flow_residual=residual)
    with guard():
        edges = backend.flow_edges(state.model, state.prompt, threshold)
        st.caption(
            "Columns are the residual stream entering each layer; an edge carries a source token's information "
            "into a destination token through one head (colour; a head's edges are shifted by its own small "
            "offset, so heads between the same tokens stay apart), or the token's own residual (grey). "
            f"{len(edges)} edges at or above {threshold:.2f}. **Click a node or an edge** to open its lens "
            "and its head below."
        )
        graph = _graph(edges, tokens, model.cfg.n_layers, residual, model.cfg.n_heads)
        event = st.altair_chart(
            graph,
            width="stretch",
            height=40 * len(tokens) + 80,
            key="flow_graph",
            on_select="rerun",
            selection_mode=["pick_edge", "pick_node"],
        )
        export_buttons(graph, "context_flow")
        state = replace(state, flow_pick=_picked(event, state.flow_pick))
        if state.flow_pick:
            with guard():
                _pick_panel(state, tokens, edges, model.cfg.n_layers)
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


_LAST = "_flow_last_event"


def _picked(event, current: str) -> str:
    """The pick a new click made (an edge's or a node's id), else the current one (from the link)."""
    selection = getattr(event, "selection", None) or {}
    ids = [p.get("pick_id") for name in ("pick_edge", "pick_node") for p in selection.get(name, []) or []]
    ids = [i for i in ids if i]
    seen = st.session_state.get(_LAST)
    st.session_state[_LAST] = ids
    if ids and ids != seen:
        return ids[0]
    if not ids and seen:  # the click was undone (clicking the same mark again, or the background)
        return ""
    return current


def parse_pick(pick: str, n_layers: int, n_tokens: int) -> dict:
    """ "E1.2.3.5" (layer 1, head 2, src 3, dest 5; head -1 = residual) or "N2.4" (node: layer 2, pos 4)."""
    kind, rest = pick[:1], pick[1:]
    try:
        parts = [int(x) for x in rest.split(".")]
    except ValueError:
        parts = []
    if kind == "E" and len(parts) == 4:
        layer, head, src, dest = parts
        if 0 <= layer < n_layers and 0 <= src <= dest < n_tokens:
            return {"layer": layer, "head": head, "src": src, "dest": dest}
    if kind == "N" and len(parts) == 2 and 0 <= parts[0] <= n_layers and 0 <= parts[1] < n_tokens:
        return {"x": parts[0], "pos": parts[1]}
    raise ValueError(f"flow_pick={pick!r} is not an edge or a node of this prompt; click one in the graph")


def _lens_line(state: ViewState, lens_layer: int, pos: int, names: list[str]) -> str:
    df = backend.lens(state.model, state.prompt, None)
    row = df[(df["layer"] == lens_layer) & (df["pos"] == pos)].iloc[0]
    where = "the embeddings" if lens_layer == 0 else f"after L{lens_layer - 1}"
    tops = ", ".join(f"{t!r} {p:.2f}" for t, p in zip(row["top_tokens"], row["top_probs"], strict=True))
    return f"Logit lens of {names[pos]!r} {where} (lens row {lens_layer}): {tops}"


def _pick_panel(state: ViewState, tokens: list[str], edges: pd.DataFrame, n_layers: int) -> None:
    names = labels(tokens)
    pick = parse_pick(state.flow_pick, n_layers, len(tokens))
    box = st.container(border=True, key="flow_pick_panel")
    if "x" in pick:
        x, pos = pick["x"], pick["pos"]
        box.markdown(
            f"**Node {names[pos]!r} entering {'L' + str(x) if x < n_layers else 'the unembedding'}**"
        )
        box.write(_lens_line(state, x, pos, names))
        into = edges[(edges["kind"] == "head") & (edges["layer"] == x - 1) & (edges["dest"] == pos)]
        if into.empty:
            box.caption("No head edge above the threshold comes into this node.")
            return
        best = into.sort_values("importance", ascending=False).iloc[0]
        layer, head, dest = int(best["layer"]), int(best["head"]), pos
        box.caption(f"Its strongest incoming head: L{layer}H{head} from {names[int(best['src'])]!r}.")
    else:
        layer, head, src, dest = pick["layer"], pick["head"], pick["src"], pick["dest"]
        via = "its own residual" if head < 0 else f"head L{layer}H{head}"
        box.markdown(f"**Edge {names[src]!r} → {names[dest]!r} through {via} (layer {layer})**")
        box.write(_lens_line(state, layer + 1, dest, names))
        if head < 0:
            return
    ex = backend.explain_head(state.model, state.prompt, layer, head, dest)
    weights = ex.sources.set_index("pos")["weight"]
    top = weights.sort_values(ascending=False).head(3)
    box.write(
        f"Head L{layer}H{head} at {names[dest]!r}: attends to "
        + ", ".join(f"{names[int(p)]!r} {w:.3f}" for p, w in top.items())
        + f"; its ΔE (‖{ex.head_delta_norm:.3f}‖, {ex.head_share:.1%} of the layer's) promotes "
        + ", ".join(map(repr, ex.promoted))
        + "."
    )
    box.caption("The Attention view explains this head step by step.")


def _graph(
    edges: pd.DataFrame, tokens: list[str], n_layers: int, residual: bool, n_heads: int
) -> alt.LayerChart:
    n = len(tokens)
    nodes = pd.DataFrame(
        [{"x": x, "y": p, "pick_id": f"N{x}.{p}", "node": f"{tokens[p]!r} entering {'L' + str(x) if x < n_layers else 'out'}"}
         for x in range(n_layers + 1) for p in range(n)]
    )  # fmt: skip
    keep = edges[(edges["kind"] == "head") | ((edges["kind"] == "residual") & residual)]
    # Each head's edges are shifted by its own offset (the residual's stays centred), so two heads that
    # link the same tokens in the same layer draw two parallel lines, not one on top of the other.
    head_no = [int(h) if k == "head" else -1 for h, k in zip(keep["head"], keep["kind"], strict=True)]
    shift = [0.0 if h < 0 else 0.3 * ((h + 0.5) / n_heads - 0.5) for h in head_no]
    lines = pd.DataFrame(
        {
            "x": keep["layer"].astype(int),
            "x2": keep["layer"].astype(int) + 1,
            "y": keep["src"].astype(int) + shift,
            "y2": keep["dest"].astype(int) + shift,
            "pick_id": [
                f"E{layer}.{h}.{s}.{d}"
                for layer, h, s, d in zip(keep["layer"], head_no, keep["src"], keep["dest"], strict=True)
            ],
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
    pick_edge = alt.selection_point(name="pick_edge", fields=["pick_id"], on="click")
    pick_node = alt.selection_point(name="pick_node", fields=["pick_id"], on="click")
    rules = (
        alt.Chart(lines)
        .mark_rule(strokeCap="round", cursor="pointer")
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
        .add_params(pick_edge)
    )
    dots = (
        alt.Chart(nodes)
        .mark_circle(size=60, cursor="pointer")
        .encode(
            x=x,
            y=y,
            color=alt.condition(pick_node, alt.value("#e4572e"), alt.value("#444")),
            tooltip=["node"],
        )
        .add_params(pick_node)
    )
    names = pd.DataFrame({"x": -0.15, "y": range(n), "token": labels(tokens)})
    text = alt.Chart(names).mark_text(align="right", fontSize=12).encode(x=x, y=y, text="token:N")
    layer_names = pd.DataFrame(
        {"x": range(n_layers + 1), "y": -0.5, "label": [f"L{i}" for i in range(n_layers)] + ["out"]}
    )
    top = alt.Chart(layer_names).mark_text(baseline="bottom", color="#666").encode(x=x, y=y, text="label:N")
    chart = rules + dots + text + top
    return chart.properties(usermeta={"embedOptions": {"renderer": "svg"}})  # marks a test can click


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]  # fmt: skip
