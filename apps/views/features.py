"""Features: a dictionary's (SAE's) most active latents on the prompt, one latent's top contexts and
vocabulary projection, and the prediction with that latent ablated, live (interp.sae through ModelView)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from apps import backend
from apps.model_view import ModelView
from apps.state import ViewState
from apps.views import guard, labels, prompt_tokens, seed


def render(state: ViewState, model: ModelView) -> ViewState:
    tokens = prompt_tokens(state)
    offered = list(backend.sae_folders(state.model))
    if not offered:
        st.info(
            "No dictionary is available for this model: the server offers an embedded model's shipped SAEs "
            "(interp/embedded/<model>/saes/) and SAE folders named in INTERP_DASHBOARD_SAES when it starts."
        )
        return state
    name = state.sae if state.sae in offered else offered[0]
    name = st.selectbox("Dictionary", offered, key=seed("sae", name))
    state = replace(state, sae=name)
    if tokens is None:
        return state
    with guard():
        sae = backend.sae(state.model, name)
        st.caption(
            f"{sae.cfg.architecture} dictionary, {sae.cfg.d_sae} latents, reading {sae.cfg.hook_name}."
        )
        top = backend.prompt_latents(state.model, state.prompt, name)
        names = labels(tokens)
        table = top.assign(position=[names[p] for p in top["pos"]])
        st.markdown("**Most active latents per position** (top 3)")
        st.dataframe(
            table[["position", "latent", "activation"]],
            hide_index=True,
            key="features_top",
            column_config={"activation": st.column_config.NumberColumn(format="%.3f")},
        )
        seen = sorted(set(top["latent"].astype(int)))
        latent = state.latent if state.latent >= 0 else (seen[0] if seen else 0)
        if latent >= sae.cfg.d_sae:
            st.warning(
                f"latent={latent} is out of range (latents 0 to {sae.cfg.d_sae - 1}); using {sae.cfg.d_sae - 1}."
            )
            latent = sae.cfg.d_sae - 1
            st.session_state.pop("latent", None)
        latent = st.number_input("Latent", 0, sae.cfg.d_sae - 1, step=1, key=seed("latent", latent))
        ablate = st.toggle(
            "Ablate this latent (zero, every position)", key=seed("feat_ablate", state.feat_ablate)
        )
        state = replace(state, latent=int(latent), feat_ablate=ablate)
        _latent_panel(state, name, int(latent), ablate)
    return state


def _latent_panel(state: ViewState, name: str, latent: int, ablate: bool) -> None:
    left, right = st.columns(2)
    with left:
        st.markdown(f"**Latent {latent}: top contexts in the model's corpus**")
        contexts = backend.latent_contexts(state.model, name, latent)
        if contexts.empty:
            st.caption("No corpus for this model, or the latent never fires on it.")
        else:
            st.dataframe(contexts[["activation", "context"]], hide_index=True, key="features_contexts")
    with right:
        st.markdown(f"**Latent {latent}: vocabulary projection** (W_dec · W_U)")
        with guard():
            vocab = backend.latent_vocab(state.model, name, latent)
            st.dataframe(
                vocab.drop(columns=["latent"], errors="ignore"), hide_index=True, key="features_vocab"
            )
    before = backend.next_token_probs(state.model, state.prompt)
    ids = list(np.argsort(-before)[:8])
    df = pd.DataFrame({"token": backend.decode(state.model, ids), "p_before": before[ids].astype(float)})
    if ablate:
        after = backend.probs_without_latent(state.model, state.prompt, name, latent)
        df["p_after"] = after[ids].astype(float)
        df["change"] = df["p_after"] - df["p_before"]
    st.markdown(f"**Next-token prediction{' with latent ' + str(latent) + ' ablated' if ablate else ''}**")
    st.dataframe(df, hide_index=True, key="features_ablation",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in df.columns[1:]})  # fmt: skip
