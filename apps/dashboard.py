"""interp dashboard: explore a prompt, ablate heads, MLP layers and neurons live.

    interp dashboard                  # or: streamlit run apps/dashboard.py

The sidebar picks the model, the prompt and the view; the whole view state lives in the URL (apps/state.py),
so a copied link reproduces the page. Views see the model through apps/model_view.py (`ModelView`), its
answers cached and its input checked by apps/backend.py.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

# `streamlit run` puts apps/ on sys.path, not the folder holding the `apps` package; installed (bin/setup),
# the package is importable anyway, and from a bare checkout this makes it so.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import streamlit as st  # noqa: E402

from apps import backend, state  # noqa: E402
from apps.views import attention, compare, features, flow, guard, lens, patching, predict, seed, tracing  # noqa: E402

VIEW_MODULES = {
    "predict": predict,
    "attention": attention,
    "flow": flow,
    "lens": lens,
    "tracing": tracing,
    "patching": patching,
    "compare": compare,
    "features": features,
}
LOCAL = "Local folder…"

st.set_page_config(page_title="interp dashboard", page_icon="🔬", layout="wide")
view, notes = state.current(st.session_state, st.query_params.to_dict())
for note in notes:
    st.warning(note)

with st.sidebar:
    st.title("interp")
    embedded = backend.embedded_models()
    choice = st.selectbox(
        "Model", [*embedded, LOCAL], key=seed("model_choice", view.model if view.model in embedded else LOCAL)
    )
    model = choice
    if choice == LOCAL:
        model = st.text_input(
            "Model folder",
            key=seed("model_path", "" if view.model in embedded else view.model),
            placeholder="/path/to/hf-or-interp-model",
            help="A Hugging Face folder (config.json + weights + tokenizer) or one saved by model.save(), "
            "inside a folder this server offers: "
            + (
                ", ".join(backend.allowed_folders()) or "none (start it with `interp dashboard --models DIR`)"
            ),
        ).strip()
    prompt = st.text_input("Prompt", key=seed("prompt", view.prompt))
    page = st.radio("View", list(state.VIEWS), format_func=state.VIEWS.get, key=seed("view", view.view))
    view = replace(view, model=model, prompt=prompt, view=page)

    lm = None
    with guard():
        lm = backend.model_view(model)
        c = lm.cfg
        st.caption(
            f"{c.n_layers} layers · {c.n_heads} heads · d_model {c.d_model} · d_mlp {c.d_mlp} · "
            f"context {c.n_ctx} · {lm.n_params / 1e6:.2f}M parameters"
        )


PANEL_KEY = "_panel_view"


@st.fragment
def panel(lm: backend.ModelView) -> None:
    """The view itself, as a fragment: a widget inside it (an ablation toggle) re-runs only this panel, not
    the sidebar and the model check. It reads the state from the session, where a full run puts the
    sidebar's and this panel's last rerun its own, so a fragment rerun never starts from a stale state; the
    URL is written here."""
    view = st.session_state[PANEL_KEY]
    with guard():
        view = VIEW_MODULES[view.view].render(view, lm)
    st.session_state[PANEL_KEY] = view
    state.commit(st.session_state, st.query_params, view)


st.header(state.VIEWS[view.view])
if lm is None:
    st.error("Pick an embedded model or a valid folder in the sidebar.")
    state.commit(st.session_state, st.query_params, view)
else:
    n_tokens = None
    try:
        n_tokens = len(backend.str_tokens(view.model, view.prompt))
    except ValueError:
        pass  # the view says what is wrong with the prompt
    view, fit_notes = state.fit(view, lm.cfg.n_layers, lm.cfg.n_heads, lm.cfg.d_mlp, n_tokens)
    for note in fit_notes:
        st.warning(note)
    st.session_state[PANEL_KEY] = view
    panel(lm)
