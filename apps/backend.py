"""Streamlit's caches in front of `ModelView`, and the checks of what the user typed.

Views pass plain values (a model source string, prompts, an `Ablation`) and get back DataFrames, numpy
arrays or small dataclasses from `apps.model_view.ModelView`. Each function here does two things only:
check the input (raising `InputError` with a message meant for the page), then call the view (no lock:
sessions run at once), cached. Results are cached with `st.cache_data` keyed by the model *source* string (the model
itself is loaded once per source with `st.cache_resource`), so a rerun that changes nothing costs a
dictionary lookup.

The library's own ValueErrors (e.g. subject not found) already read like InputError, and views show both
with `st.error`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

import interp
import interp.sae
from apps.model_view import Ablation, HeadExplanation, ModelView, ResidualUpdate
from apps.state import ViewState
from interp.analysis import MLP, Attn, Head, Neuron, Resid
from interp.embedded import EMBEDDED, embedded_model, saes_dir

__all__ = ["Ablation", "HeadExplanation", "InputError", "LoadError", "ModelView", "ResidualUpdate"]

LoadError = interp.LoadError  # a model that cannot be loaded; views show its message


class InputError(ValueError):
    """A problem with what the user typed; the message is shown as is."""


# No lock: scoped hooks (every ablation, every cache) belong to the session's own thread, so sessions share
# one model and run at once. torch's thread count is process-wide, so it is set here, once, at start-up:
# one intra-op thread per forward (the embedded models are small: a 4-layer d_model 128 forward takes
# 1.3 ms on one thread, 18-110 ms on two of a busy 2-core machine), and concurrent sessions use the other
# cores. INTERP_DASHBOARD_THREADS overrides it for big models.
torch.set_num_threads(int(os.environ.get("INTERP_DASHBOARD_THREADS", "1")))


def embedded_models() -> list[str]:
    return list(EMBEDDED)


# --- which models a link may load -----------------------------------------------------------------------
# A shared link's model= must not make the server read any path or download any hub id: the server offers
# the embedded models, the folders named when it starts (`interp dashboard --models DIR…`, passed to the
# page after `--`, or INTERP_DASHBOARD_MODELS, os.pathsep-separated) and what lies below them, and hub
# ids only with `--allow-hub` (or INTERP_DASHBOARD_HUB=1).


def server_options(argv: Sequence[str] | None = None) -> tuple[tuple[Path, ...], bool]:
    """(allowed folders, hub ids allowed) from the page's arguments and the environment."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--models", nargs="*", default=[])
    parser.add_argument("--allow-hub", action="store_true")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    env = [p for p in os.environ.get("INTERP_DASHBOARD_MODELS", "").split(os.pathsep) if p]
    roots = tuple(Path(p).expanduser().resolve() for p in [*args.models, *env])
    return roots, args.allow_hub or os.environ.get("INTERP_DASHBOARD_HUB") == "1"


def allowed_folders() -> list[str]:
    return [str(p) for p in server_options()[0]]


def check_source(source: str) -> str:
    """The source if this server offers it; InputError otherwise, the same words whether or not the path
    exists (a link must not learn which server paths exist)."""
    source = source.strip()
    if not source:
        raise InputError("Enter a model folder (or pick an embedded model).")
    if source in EMBEDDED:
        return source
    roots, hub = server_options()
    path = Path(source).expanduser()
    if path.is_absolute() or source.startswith((".", "~")):
        resolved = path.resolve()
        if any(resolved == r or resolved.is_relative_to(r) for r in roots):
            return str(resolved)
    elif hub:
        return source
    offered = ", ".join([*EMBEDDED, *(f"folders under {r}" for r in roots), *(["hub ids"] * hub)])
    raise InputError(f"{source!r} is not a model this server offers; it offers {offered}.")


def _world(source: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """An embedded model's corpus sample and the names its world knows; empty for other models."""
    folder = EMBEDDED.get(source)
    if folder is None:
        return (), ()
    corpus: tuple[str, ...] = ()
    names: list[str] = []
    try:
        docs = importlib.import_module(f"interp.embedded.{folder}.corpus")
        corpus = tuple(docs.training_documents(200, seed=0))
    except (ImportError, AttributeError):
        pass
    try:
        world = importlib.import_module(f"interp.embedded.{folder}.world")
        # Chinese names too where the world has them (tiny-facts-2): "法国的首都是" suggests 法国
        tables = (
            ("COUNTRIES", ("name", "capital", "zh_name", "zh_capital")),
            ("PEOPLE", ("name", "zh_name")),
        )
        for table, fields in tables:
            for row in getattr(world, table, ()):
                names.extend(getattr(row, f) for f in fields if isinstance(getattr(row, f, None), str))
    except ImportError:
        pass
    return corpus, tuple(names)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def model_view(source: str) -> ModelView:
    """interp.load, once per source; raises interp.LoadError with a readable message."""
    source = check_source(source)
    model = interp.load(source)
    if model.tokenizer is None:
        raise InputError(f"{source} has no tokenizer; the dashboard needs one to read prompts.")
    corpus, subjects = _world(source)
    return ModelView(model, corpus, subjects)


@contextmanager
def _using(source: str) -> Iterator[ModelView]:
    view = model_view(source)
    with torch.no_grad():  # grad mode is per thread
        yield view


# --- tokens ---------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=1024)
def str_tokens(source: str, prompt: str) -> list[str]:
    """The prompt's tokens (BOS included); InputError when it is empty or longer than the context."""
    if not prompt.strip():
        raise InputError("The prompt is empty: type some text.")
    view = model_view(source)
    tokens = view.str_tokens(prompt)
    if len(tokens) > view.cfg.n_ctx:
        raise InputError(
            f"The prompt is {len(tokens)} tokens long but the model's context holds {view.cfg.n_ctx}; "
            "shorten it."
        )
    return tokens


@st.cache_data(show_spinner=False, max_entries=1024)
def token_id(source: str, text: str) -> int:
    """The id of a single-token string such as " Paris"; InputError otherwise."""
    view = model_view(source)
    ids = view.encode(text)
    if len(ids) == 1:
        return ids[0]
    hint = ""
    if not text.startswith(" ") and len(view.encode(" " + text)) == 1:
        hint = f" Did you mean {' ' + text!r}, with a leading space?"
    raise InputError(
        f"The target {text!r} is {len(ids)} tokens {view.decode(ids)}; pick a single token.{hint}"
    )


def decode(source: str, ids: Sequence[int]) -> list[str]:
    return model_view(source).decode(ids)


# --- predictions and ablations --------------------------------------------------------------------------


NOTHING = Ablation()  # no site ablated


def ablation_of(state: ViewState) -> Ablation:
    """The view state's ablation as interp sites: heads, attention layers, MLP layers, neurons."""
    pos = state.positions or None
    sites = (
        *(Head(layer, h, pos) for layer, h in state.heads),
        *(Attn(layer, pos) for layer in state.attn),
        *(MLP(layer, pos) for layer in state.mlp),
        *(Neuron(layer, i, pos) for layer, i in state.neurons),
    )
    reference = tuple(line for line in state.reference.splitlines() if line.strip())
    return Ablation(sites, state.method, reference, state.ref_source)


def reference_prompts(source: str, prompt: str, reference: Sequence[str]) -> tuple[list[str], list[str]]:
    """The reference prompts usable with this prompt (at least its token count) and the ones left out.

    Mean and resample ablation replace activations position by position, so a reference prompt must
    cover every position of the prompt; longer ones are cut to the prompt's length.
    """
    n = len(str_tokens(source, prompt))
    usable, skipped = [], []
    for ref in (r for r in reference if r.strip()):
        (usable if len(model_view(source).str_tokens(ref)) >= n else skipped).append(ref)
    return usable, skipped


@st.cache_data(show_spinner=False, max_entries=256)
def reference_note(source: str, prompt: str, ablation: Ablation) -> str:
    """Which reference a mean/resample ablation uses, in words; InputError when there is none."""
    n = len(str_tokens(source, prompt))
    try:
        with _using(source) as view:
            return view.reference_tokens(ablation, n)[1]
    except ValueError as e:
        raise InputError(str(e)) from None


def _checked(source: str, prompt: str, ablation: Ablation) -> Ablation:
    """The ablation with only its usable reference prompts; InputError when mean/resample has none."""
    str_tokens(source, prompt)  # validates length and emptiness first
    if not ablation or ablation.method == "zero":
        return ablation
    reference_note(source, prompt, ablation)  # raises when there is no usable reference
    if ablation.source == "corpus":
        return replace(ablation, reference=())
    usable, _ = reference_prompts(source, prompt, ablation.reference)
    return replace(ablation, reference=tuple(usable))


def subject_suggestion(source: str, prompt: str) -> str:
    """A fact-tracing subject for the prompt: the longest name the model's world knows in it."""
    return model_view(source).suggest_subject(prompt)


@st.cache_data(show_spinner=False, max_entries=512)
def next_token_probs(source: str, prompt: str, ablation: Ablation = NOTHING) -> np.ndarray:
    """P(next token) [d_vocab] after the prompt, with the ablation applied (none by default)."""
    ablation = _checked(source, prompt, ablation)
    with _using(source) as view:
        return view.next_token_probs(prompt, ablation)


@st.cache_data(show_spinner=False, max_entries=512)
def compare(source: str, prompt: str, ablation: Ablation, target: int | None, k: int = 8) -> pd.DataFrame:
    """Before/after table: the top-k tokens of both runs and the target, with probabilities and change."""
    ablation = _checked(source, prompt, ablation)
    with _using(source) as view:
        return view.compare(prompt, ablation, target, k)


def room(source: str, prompt: str) -> int:
    """How many tokens fit after the prompt in the model's context."""
    return model_view(source).cfg.n_ctx - len(str_tokens(source, prompt))


@st.cache_data(show_spinner="Generating…", max_entries=128)
def continuation(source: str, prompt: str, ablation: Ablation, n_tokens: int) -> tuple[str, str]:
    """Greedy continuations (new text only) without and with the ablation, within the context."""
    n_tokens = min(n_tokens, room(source, prompt))
    if n_tokens <= 0:
        raise InputError(
            f"The prompt fills the model's context ({model_view(source).cfg.n_ctx} tokens): there is no room "
            "to generate. Shorten the prompt."
        )
    ablation = _checked(source, prompt, ablation)
    with _using(source) as view:
        return view.continuation(prompt, ablation, n_tokens)


# --- attention ------------------------------------------------------------------------------------------


def _layer(source: str, layer: int) -> None:
    n = model_view(source).cfg.n_layers
    if not 0 <= layer < n:
        raise InputError(f"Layer {layer} does not exist: the model has layers 0 to {n - 1}.")


@st.cache_data(show_spinner=False, max_entries=64)
def attention_patterns(source: str, prompt: str, layer: int) -> np.ndarray:
    """The layer's attention pattern [head, dest, src]."""
    str_tokens(source, prompt)
    _layer(source, layer)
    with _using(source) as view:
        return view.attention(prompt, layer)


@st.cache_data(show_spinner=False, max_entries=256)
def explain_head(source: str, prompt: str, layer: int, head: int, dest: int) -> HeadExplanation:
    """One head at one destination token, step by step (see interp.analysis.explain)."""
    tokens = str_tokens(source, prompt)
    _layer(source, layer)
    with _using(source) as view:
        return view.explain_head(prompt, layer, head, dest % len(tokens))


@st.cache_data(show_spinner=False, max_entries=256)
def residual_update(source: str, prompt: str, layer: int, pos: int, target: int | None) -> ResidualUpdate:
    """E' = E + ΔE of one attention layer at one position, in tokens (see interp.analysis.update)."""
    tokens = str_tokens(source, prompt)
    _layer(source, layer)
    if not -len(tokens) <= pos < len(tokens):
        raise InputError(f"Position {pos} is outside the prompt's {len(tokens)} tokens.")
    with _using(source) as view:
        return view.residual_update(prompt, layer, pos % len(tokens), target)


@st.cache_data(show_spinner=False, max_entries=64)
def residual_decomposition(source: str, prompt: str, pos: int = -1) -> pd.DataFrame:
    """The final residual at `pos` split into embeddings and each layer's attention and MLP ΔE."""
    tokens = str_tokens(source, prompt)
    if not -len(tokens) <= pos < len(tokens):
        raise InputError(f"Position {pos} is outside the prompt's {len(tokens)} tokens.")
    with _using(source) as view:
        return view.residual_decomposition(prompt, pos)


# --- context flow and logit lens ------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _all_flow_edges(source: str, prompt: str) -> pd.DataFrame:
    str_tokens(source, prompt)
    with _using(source) as view:
        return view.flow_edges(prompt)


def flow_edges(source: str, prompt: str, threshold: float) -> pd.DataFrame:
    """Context-flow edges (layer, dest, src, head, kind, importance) at or above the threshold."""
    df = _all_flow_edges(source, prompt)
    return df[df["importance"] >= threshold].reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=64)
def lens(source: str, prompt: str, target: int | None) -> pd.DataFrame:
    """logit_lens rows (layer, pos, top token, target probability and rank), one per (layer, position)."""
    str_tokens(source, prompt)
    with _using(source) as view:
        return view.lens(prompt, target)


# --- fact tracing ---------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def subject_tokens(source: str, prompt: str, subject: str) -> tuple[int, int]:
    """The subject's token span [start, end); ValueError when the subject is not in the prompt."""
    str_tokens(source, prompt)
    if not subject.strip():
        raise InputError("Type the subject, a part of the prompt (a name the fact is about).")
    with _using(source) as view:
        return view.subject_span(prompt, subject)


@st.cache_data(show_spinner="Causal tracing…", max_entries=64)
def trace(source: str, prompt: str, subject: str, target: int | None, kind: str, window: int) -> pd.DataFrame:
    """causal_trace (10 noise samples, seed 0); attrs hold p_clean, p_corrupted, target, subject_span."""
    subject_tokens(source, prompt, subject)
    with _using(source) as view:
        return view.trace(prompt, subject, target, kind, window)


@st.cache_data(show_spinner=False, max_entries=64)
def mlp_ablation_effects(source: str, prompt: str, subject: str, target: int | None) -> pd.DataFrame:
    """P(answer) with each MLP layer zero-ablated, at every position and at the last subject token."""
    subject_tokens(source, prompt, subject)
    p_clean = next_token_probs(source, prompt)
    answer = target if target is not None else int(p_clean.argmax())
    with _using(source) as view:
        out = view.mlp_ablation_effects(prompt, subject, answer)
    out.attrs.update(answer=answer, p_clean=float(p_clean[answer]))
    return out


@st.cache_data(show_spinner=False, max_entries=256)
def layer_neurons(
    source: str, prompt: str, layer: int, pos: int, target: int | None, k: int = 10
) -> pd.DataFrame:
    """The layer's most active neurons at `pos`, the tokens their value vectors promote, their pull on the target."""
    str_tokens(source, prompt)
    _layer(source, layer)
    with _using(source) as view:
        return view.layer_neurons(prompt, layer, pos, target, k)


# --- patching -------------------------------------------------------------------------------------------

# The patching view's site choices (the URL's words, apps.state.SITES) as interp sites for n positions.
# "resid" is the residual entering each block (resid_pre); "head" is each head's output at every position.
PATCH_SITES = {
    "resid": lambda view, n_pos: Resid.every(view.model, n_pos, stage="pre"),
    "attn": lambda view, n_pos: Attn.every(view.model, n_pos),
    "mlp": lambda view, n_pos: MLP.every(view.model, n_pos),
    "head": lambda view, n_pos: Head.every(view.model),
}


@st.cache_data(show_spinner="Patching…", max_entries=64)
def patching(
    source: str, clean: str, corrupted: str, site: str, metric: str, target: int | None
) -> pd.DataFrame:
    """Denoising sweep (corrupted run, one clean activation restored per cell), with token labels.

    The metric is logit[clean answer] − logit[corrupted answer] or P(clean answer); the answers are the
    target (if given) and each prompt's top prediction. attrs: base/source metric and the answers.
    """
    clean_tokens, corrupt_tokens = str_tokens(source, clean), str_tokens(source, corrupted)
    if len(clean_tokens) != len(corrupt_tokens):
        raise InputError(
            f"The clean prompt is {len(clean_tokens)} tokens and the corrupted one {len(corrupt_tokens)}: "
            "patching swaps activations position by position, so both need the same number of tokens."
        )
    if site not in PATCH_SITES:
        raise InputError(f"Unknown patching site {site!r}; pick one of {', '.join(PATCH_SITES)}.")
    answer = target if target is not None else int(next_token_probs(source, clean).argmax())
    wrong = int(next_token_probs(source, corrupted).argmax())
    with _using(source) as view:
        sites = PATCH_SITES[site](view, len(clean_tokens))
        df = view.patching(clean, corrupted, sites, metric, answer, wrong)
    answers = decode(source, [answer, wrong])
    df.attrs.update(answer=answers[0], wrong=answers[1], same_answer=answer == wrong)
    # The download says what was measured: the prompts, the answers and the metric, on every row.
    df.insert(
        0, "metric_name", metric if metric == "prob" else f"logit_diff({answers[0]!r} - {answers[1]!r})"
    )
    for name, value in (("wrong_answer", answers[1]), ("answer", answers[0])):
        df.insert(0, name, value)
    df.insert(0, "corrupted_prompt", corrupted)
    df.insert(0, "clean_prompt", clean)
    return df


# --- dictionary features ----------------------------------------------------------------------------------
# The dictionaries offered for a model: the ones shipped with the embedded model it is (by name or by its
# weights folder: interp/embedded/<model>/saes/*, never another model's), and SAE folders named when the
# server starts (INTERP_DASHBOARD_SAES, os.pathsep-separated; each saved by interp.sae.save). A link names a
# dictionary only by its name in this list, never by a path.


def sae_folders(source: str) -> dict[str, Path]:
    """name -> folder of every dictionary this server offers for the model."""
    out: dict[str, Path] = {}
    name = embedded_model(source.strip()) if source.strip() else None
    if name is not None and saes_dir(name).is_dir():
        out.update({p.name: p for p in sorted(saes_dir(name).iterdir()) if (p / "cfg.json").is_file()})
    for p in filter(None, os.environ.get("INTERP_DASHBOARD_SAES", "").split(os.pathsep)):
        out[Path(p).name] = Path(p)
    return out


@st.cache_resource(show_spinner="Loading the dictionary…", max_entries=8)
def sae(source: str, name: str) -> interp.sae.SAE:
    folders = sae_folders(source)
    if name not in folders:
        raise InputError(
            f"{name!r} is not a dictionary this server offers; it offers {', '.join(folders) or 'none'}."
        )
    loaded = interp.sae.load(folders[name])
    if loaded.cfg.d_in != model_view(source).cfg.d_model and loaded.cfg.reshape_activations == "none":
        raise InputError(f"The dictionary {name!r} reads width {loaded.cfg.d_in}, not this model's d_model.")
    return loaded


@st.cache_data(show_spinner=False, max_entries=128)
def prompt_latents(source: str, prompt: str, name: str, k: int = 3) -> pd.DataFrame:
    str_tokens(source, prompt)
    with _using(source) as view:
        return view.prompt_latents(prompt, sae(source, name), k)


def _latent(source: str, name: str, latent: int) -> None:
    d = sae(source, name).cfg.d_sae
    if not 0 <= latent < d:
        raise InputError(f"Latent {latent} does not exist: the dictionary has latents 0 to {d - 1}.")


@st.cache_data(show_spinner="Finding top contexts…", max_entries=128)
def latent_contexts(source: str, name: str, latent: int) -> pd.DataFrame:
    _latent(source, name, latent)
    with _using(source) as view:
        return view.latent_contexts(sae(source, name), latent)


@st.cache_data(show_spinner=False, max_entries=128)
def latent_vocab(source: str, name: str, latent: int) -> pd.DataFrame:
    _latent(source, name, latent)
    with _using(source) as view:
        return view.latent_vocab(sae(source, name), latent)


@st.cache_data(show_spinner=False, max_entries=256)
def probs_without_latent(source: str, prompt: str, name: str, latent: int) -> np.ndarray:
    str_tokens(source, prompt)
    _latent(source, name, latent)
    with _using(source) as view:
        return view.probs_without_latent(prompt, sae(source, name), latent)
