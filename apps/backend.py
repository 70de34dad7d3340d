"""The dashboard's one door into interp, in the spirit of llm-transparency-tool's `TransparentLlm`.

Views pass plain values (a model source string, prompts, an `Ablation`) and get back DataFrames, numpy
arrays or small dataclasses; they never see a tensor, a hook or the model. Results are cached with
`st.cache_data` keyed by the model *source* string (the model itself is cached once per source with
`st.cache_resource`), so a rerun that changes nothing costs a dictionary lookup.

Errors the user can fix (empty prompt, too long, not a single token, ...) are raised as `InputError`
with a message meant for the page; the library's own ValueErrors (e.g. subject not found) already read
that way, and views show both with `st.error`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
import torch

import interp
from interp import HookedTransformer
from interp.analysis import (
    MLP,
    Attn,
    Head,
    Neuron,
    Resid,
    ablate,
    ablation_sweep,
    causal_trace,
    denoise,
    flow_graph,
    generate,
    logit_diff,
    logit_lens,
    neuron_vocab,
    prob,
    run_ablated,
    subject_span,
    top_neurons,
)
from interp.embedded import EMBEDDED


class InputError(ValueError):
    """A problem with what the user typed; the message is shown as is."""


# Hooks (ablations) are attached to the one shared model, so two sessions must not run it at once.
_LOCK = threading.RLock()
# Below this size, OpenMP threads waiting on each other cost more than they save (measured: a 4-layer
# d_model 128 forward takes 1.3 ms on one thread, 18-110 ms on two of a busy 2-core machine).
_SMALL_MODEL = 20_000_000
_DEFAULT_THREADS = torch.get_num_threads()


def embedded_models() -> list[str]:
    return list(EMBEDDED)


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_model(source: str) -> HookedTransformer:
    """interp.load, once per source; raises interp.LoadError with a readable message."""
    if not source.strip():
        raise InputError("Enter a model folder (or pick an embedded model).")
    model = interp.load(source.strip())
    if model.tokenizer is None:
        raise InputError(f"{source} has no tokenizer; the dashboard needs one to read prompts.")
    return model.eval().requires_grad_(False)


@contextmanager
def _using(source: str) -> Iterator[HookedTransformer]:
    model = load_model(source)
    small = sum(p.numel() for p in model.parameters()) < _SMALL_MODEL
    with _LOCK, torch.no_grad():
        torch.set_num_threads(1 if small else _DEFAULT_THREADS)
        yield model


@dataclass(frozen=True)
class ModelInfo:
    source: str
    n_layers: int
    n_heads: int
    d_model: int
    d_head: int
    d_mlp: int
    n_ctx: int
    d_vocab: int
    n_params: int


@st.cache_data(show_spinner=False)
def model_info(source: str) -> ModelInfo:
    model = load_model(source)
    c = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    return ModelInfo(
        source, c.n_layers, c.n_heads, c.d_model, c.d_head, c.d_mlp, c.n_ctx, c.d_vocab, n_params
    )


# --- tokens ---------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=1024)
def str_tokens(source: str, prompt: str) -> list[str]:
    """The prompt's tokens (BOS included); InputError when it is empty or longer than the context."""
    if not prompt.strip():
        raise InputError("The prompt is empty: type some text.")
    model = load_model(source)
    tokens = model.to_str_tokens(prompt)
    if len(tokens) > model.cfg.n_ctx:
        raise InputError(
            f"The prompt is {len(tokens)} tokens long but the model's context holds {model.cfg.n_ctx}; "
            "shorten it."
        )
    return tokens


@st.cache_data(show_spinner=False, max_entries=1024)
def token_id(source: str, text: str) -> int:
    """The id of a single-token string such as " Paris"; InputError otherwise."""
    model = load_model(source)
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    if len(ids) == 1:
        return ids[0]
    hint = ""
    if not text.startswith(" ") and len(model.tokenizer.encode(" " + text, add_special_tokens=False)) == 1:
        hint = f" Did you mean {' ' + text!r}, with a leading space?"
    pieces = [model.tokenizer.decode([i]) for i in ids]
    raise InputError(f"The target {text!r} is {len(ids)} tokens {pieces}; pick a single token.{hint}")


def decode(source: str, ids: Sequence[int]) -> list[str]:
    model = load_model(source)
    return [model.tokenizer.decode([int(i)]) for i in ids]


# --- predictions and ablations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Ablation:
    """What to ablate, how, and where; hashable, so it keys cached results."""

    heads: tuple[tuple[int, int], ...] = ()
    attn: tuple[int, ...] = ()
    mlp: tuple[int, ...] = ()
    neurons: tuple[tuple[int, int], ...] = ()
    method: str = "zero"
    positions: tuple[int, ...] = ()  # () = every position
    reference: tuple[str, ...] = ()  # mean/resample reference prompts

    def __bool__(self) -> bool:
        return bool(self.heads or self.attn or self.mlp or self.neurons)

    def sites(self) -> list[Head | Attn | MLP | Neuron]:
        pos = self.positions or None
        return [
            *(Head(layer, h, pos) for layer, h in self.heads),
            *(Attn(layer, pos) for layer in self.attn),
            *(MLP(layer, pos) for layer in self.mlp),
            *(Neuron(layer, i, pos) for layer, i in self.neurons),
        ]


def reference_prompts(source: str, prompt: str, reference: Sequence[str]) -> tuple[list[str], list[str]]:
    """The reference prompts usable with this prompt (same token count) and the ones left out.

    Mean and resample ablation replace activations position by position, so a reference prompt must
    line up with the prompt token for token.
    """
    n = len(str_tokens(source, prompt))
    usable, skipped = [], []
    for ref in (r for r in reference if r.strip()):
        (usable if len(str_tokens(source, ref)) == n else skipped).append(ref)
    return usable, skipped


def _reference(source: str, prompt: str, ablation: Ablation) -> list[str] | None:
    if ablation.method == "zero":
        return None
    usable, _ = reference_prompts(source, prompt, ablation.reference)
    if not usable:
        n = len(str_tokens(source, prompt))
        raise InputError(
            f"{ablation.method.capitalize()} ablation needs reference prompts with the prompt's {n} tokens; "
            "none of the reference prompts has that length."
        )
    return usable


@st.cache_data(show_spinner=False, max_entries=512)
def next_token_probs(source: str, prompt: str, ablation: Ablation = Ablation()) -> np.ndarray:
    """P(next token) [d_vocab] after the prompt, with the ablation applied (none by default)."""
    str_tokens(source, prompt)  # validates length and emptiness first
    reference = _reference(source, prompt, ablation) if ablation else None
    with _using(source) as model:
        if not ablation:
            logits = model(prompt)[0, -1]
        else:
            run = run_ablated(model, prompt, ablation.sites(), method=ablation.method, reference=reference)
            logits = run.logits[0, -1]
        return logits.float().softmax(-1).numpy()  # float32 softmax, as interp's prob metric


@st.cache_data(show_spinner=False, max_entries=512)
def compare(source: str, prompt: str, ablation: Ablation, target: int | None, k: int = 8) -> pd.DataFrame:
    """Before/after table: the top-k tokens of both runs and the target, with probabilities and change."""
    before = next_token_probs(source, prompt)
    after = next_token_probs(source, prompt, ablation) if ablation else before
    ids = list(dict.fromkeys([*np.argsort(-before)[:k], *np.argsort(-after)[:k]]))
    if target is not None and target not in ids:
        ids.append(target)
    rank_before = {int(i): r for r, i in enumerate(np.argsort(-before))}
    df = pd.DataFrame(
        {
            "token": decode(source, ids),
            "token_id": [int(i) for i in ids],
            "p_before": before[ids].astype(float),
            "p_after": after[ids].astype(float),
        }
    )
    df["change"] = df["p_after"] - df["p_before"]
    df["rank_before"] = [rank_before[int(i)] for i in ids]
    df["target"] = df["token_id"] == (target if target is not None else int(before.argmax()))
    return df.sort_values("p_before", ascending=False, ignore_index=True)


@st.cache_data(show_spinner="Generating…", max_entries=128)
def continuation(source: str, prompt: str, ablation: Ablation, n_tokens: int) -> tuple[str, str]:
    """Greedy continuations (new text only) without and with the ablation, within the context."""
    n_tokens = min(n_tokens, model_info(source).n_ctx - len(str_tokens(source, prompt)))
    reference = _reference(source, prompt, ablation) if ablation else None
    with _using(source) as model:
        plain = generate(model, prompt, n_tokens)
        if not ablation:
            ablated = plain
        elif ablation.method == "zero":
            with ablate(model, ablation.sites()):
                ablated = generate(model, prompt, n_tokens)
        else:
            ablated = _generate_with_reference(model, prompt, ablation, reference, n_tokens)
    start = len(model.to_string(model.to_tokens(prompt)[0]))
    return plain[start:], ablated[start:]


def _generate_with_reference(
    model: HookedTransformer, prompt: str, ablation: Ablation, reference: list[str], n_tokens: int
) -> str:
    """Greedy decoding under mean/resample ablation.

    The library's mean/resample edits hold reference activations of the prompt's length, so `generate`
    inside `ablate` fails once the sequence grows. Here each step re-runs the ablation with every
    reference prompt extended by the tokens generated so far: the new positions are replaced by the
    references' activations on the same continuation.
    """
    tokens = model.to_tokens(prompt)
    ref = model.to_tokens(reference)  # all of the prompt's length (see reference_prompts)
    for _ in range(n_tokens):
        new = tokens[:, ref.shape[1] :].expand(ref.shape[0], -1)
        ref_now = torch.cat([ref, new], dim=1)
        run = run_ablated(model, tokens, ablation.sites(), method=ablation.method, reference=ref_now)
        tokens = torch.cat([tokens, run.logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return model.to_string(tokens[0])


# --- attention ------------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def attention_patterns(source: str, prompt: str, layer: int) -> np.ndarray:
    """The layer's attention pattern [head, dest, src]."""
    str_tokens(source, prompt)
    name = f"blocks.{layer}.attn.hook_pattern"
    with _using(source) as model:
        _, cache = model.run_with_cache(prompt, names_filter=name)
    return cache[name][0].float().numpy()


@dataclass(frozen=True)
class HeadExplanation:
    """One head at one destination token, step by step: q·k, softmax, weighted values, ΔE, E' = E + ΔE."""

    layer: int
    head: int
    dest: int
    sources: pd.DataFrame  # pos, token, q·k, q·k/√d, weight, ‖w·v‖, masked
    d_head: int
    z_norm: float  # ‖Σ_s w_s v_s‖, the head's pattern-weighted value
    head_delta_norm: float  # ‖ΔE_head‖ = ‖z W_O[h]‖
    attn_delta_norm: float  # ‖ΔE‖ of the whole layer: Σ_h ΔE_h + b_O
    head_share: float  # ΔE_head · ΔE / ‖ΔE‖²: the head's share of the layer's ΔE along ΔE
    e_norm: float  # ‖E‖, resid_pre at the destination
    e_prime_norm: float  # ‖E + ΔE‖
    cos_e_delta: float  # cos(E, ΔE_head)
    pattern_error: float  # max |our softmax − the model's pattern|
    z_error: float  # max |our Σ w v − the model's z|
    sum_error: float  # max |E + ΔE − resid_mid| (the model's own residual after attention)
    promoted: list[str]  # tokens ΔE_head · W_U pushes up most (direct effect, final norm ignored)


@st.cache_data(show_spinner=False, max_entries=256)
def explain_head(source: str, prompt: str, layer: int, head: int, dest: int) -> HeadExplanation:
    tokens = str_tokens(source, prompt)
    dest = dest % len(tokens)
    with _using(source) as model:
        attn = model.blocks[layer].attn
        rotary = f"blocks.{layer}.attn.hook_rot_q" in model.hook_dict
        qk = ("rot_q", "rot_k") if rotary else ("q", "k")
        parts = [*qk, "v", "attn_scores", "pattern", "z"]
        names = [f"blocks.{layer}.attn.hook_{p}" for p in parts]
        names += [f"blocks.{layer}.hook_{p}" for p in ("resid_pre", "attn_out", "resid_mid")]
        _, cache = model.run_with_cache(prompt, names_filter=names)
        act = {n.rsplit("hook_", 1)[1]: cache[n][0].double() for n in names}
        kv = head // (attn.n_heads // attn.n_kv_heads)  # grouped-query heads share a key/value head
        q = act[qk[0]][dest, head]  # [d_head]
        k, v = act[qk[1]][:, kv], act["v"][:, kv]  # [src, d_head]
        dots = k @ q  # step 1: q·k for every source
        scaled = dots * attn.scale  # step 2: ÷√d_head (the model's own scale), masked, softmax
        masked = act["attn_scores"][head, dest].isinf()
        weights = scaled.masked_fill(masked, float("-inf")).softmax(-1)
        weighted = weights[:, None] * v  # step 3: the weighted values
        z = weighted.sum(0)
        W_O = attn.W_O[head].double()
        delta_head = z @ W_O  # step 4: the head's ΔE
        e, delta, mid = act["resid_pre"][dest], act["attn_out"][dest], act["resid_mid"][dest]
        e_prime = e + delta  # step 5: E' = E + ΔE
        logits = delta_head.float() @ model.W_U
        promoted = [model.tokenizer.decode([i]) for i in logits.topk(5).indices.tolist()]
    table = pd.DataFrame(
        {
            "pos": range(len(tokens)),
            "token": tokens,
            "q·k": dots.tolist(),
            "q·k/√d": scaled.tolist(),
            "weight": weights.tolist(),
            "‖w·v‖": weighted.norm(dim=-1).tolist(),
            "masked": masked.tolist(),
        }
    )
    return HeadExplanation(
        layer=layer,
        head=head,
        dest=dest,
        sources=table,
        d_head=attn.d_head,
        z_norm=float(z.norm()),
        head_delta_norm=float(delta_head.norm()),
        attn_delta_norm=float(delta.norm()),
        head_share=float(delta_head @ delta / delta.norm() ** 2),
        e_norm=float(e.norm()),
        e_prime_norm=float(e_prime.norm()),
        cos_e_delta=float(torch.cosine_similarity(e, delta_head, dim=0)),
        pattern_error=float((weights - act["pattern"][head, dest]).abs().max()),
        z_error=float((z - act["z"][dest, head]).abs().max()),
        sum_error=float((e_prime - mid).abs().max()),
        promoted=promoted,
    )


# --- context flow and logit lens ------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _all_flow_edges(source: str, prompt: str) -> pd.DataFrame:
    str_tokens(source, prompt)
    with _using(source) as model:
        return flow_graph(model, prompt, threshold=0.0)


def flow_edges(source: str, prompt: str, threshold: float) -> pd.DataFrame:
    """Context-flow edges (layer, dest, src, head, kind, importance) at or above the threshold."""
    df = _all_flow_edges(source, prompt)
    return df[df["importance"] >= threshold].reset_index(drop=True)


@st.cache_data(show_spinner=False, max_entries=64)
def lens(source: str, prompt: str, target: int | None) -> pd.DataFrame:
    """logit_lens rows (layer, pos, top token, target probability and rank), one per (layer, position)."""
    tokens = str_tokens(source, prompt)
    with _using(source) as model:
        df = logit_lens(model, prompt, target, k=3)
    df["token"] = [tokens[p] for p in df["pos"]]
    df["top_token"] = [t[0] for t in df["top_tokens"]]
    df["top_prob"] = [p[0] for p in df["top_probs"]]
    df["target_token"] = decode(source, df["target"].tolist())
    return df


# --- fact tracing ---------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def subject_tokens(source: str, prompt: str, subject: str) -> tuple[int, int]:
    """The subject's token span [start, end); ValueError when the subject is not in the prompt."""
    str_tokens(source, prompt)
    if not subject.strip():
        raise InputError("Type the subject, a part of the prompt (e.g. France).")
    with _using(source) as model:
        return subject_span(model, model.to_tokens(prompt), subject)


@st.cache_data(show_spinner="Causal tracing…", max_entries=64)
def trace(source: str, prompt: str, subject: str, target: int | None, kind: str, window: int) -> pd.DataFrame:
    """causal_trace (10 noise samples, seed 0); attrs hold p_clean, p_corrupted, target, subject_span."""
    subject_tokens(source, prompt, subject)
    with _using(source) as model:
        return causal_trace(model, prompt, subject, target, kind=kind, window=window, progress=False)


@st.cache_data(show_spinner=False, max_entries=64)
def mlp_ablation_effects(source: str, prompt: str, subject: str, target: int | None) -> pd.DataFrame:
    """P(answer) with each MLP layer zero-ablated, at every position and at the last subject token."""
    start, end = subject_tokens(source, prompt, subject)
    answer = target if target is not None else int(next_token_probs(source, prompt).argmax())
    with _using(source) as model:
        everywhere = MLP.every(model)
        at_subject = [MLP(layer, end - 1) for layer in range(model.cfg.n_layers)]
        frames = []
        for where, sites in (("all positions", everywhere), ("last subject token", at_subject)):
            df = ablation_sweep(model, prompt, sites, prob(answer), progress=False)
            frames.append(df[["layer", "metric", "effect"]].assign(where=where))
    out = pd.concat(frames, ignore_index=True).rename(columns={"metric": "p_answer"})
    out.attrs.update(answer=answer, p_clean=float(next_token_probs(source, prompt)[answer]))
    return out


@st.cache_data(show_spinner=False, max_entries=256)
def layer_neurons(
    source: str, prompt: str, layer: int, pos: int, target: int | None, k: int = 10
) -> pd.DataFrame:
    """The layer's most active neurons at `pos`, the tokens their value vectors promote, their pull on the target."""
    str_tokens(source, prompt)
    with _using(source) as model:
        df = top_neurons(model, prompt, k, layers=[layer], read_pos=pos)
        promotes, target_logit = [], []
        for n in df["neuron"]:
            vocab = neuron_vocab(model, layer, int(n), k=5)
            promotes.append(" ".join(repr(t) for t in vocab[vocab["direction"] == "top"]["token"]))
            if target is not None:
                target_logit.append(float(model.blocks[layer].mlp.W_out[int(n)] @ model.W_U[:, target]))
    df["promotes"] = promotes
    if target is not None:
        df["target_logit"] = target_logit  # W_out[neuron] · W_U[:, target]
    return df


# --- patching -------------------------------------------------------------------------------------------


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
    answer = target if target is not None else int(next_token_probs(source, clean).argmax())
    wrong = int(next_token_probs(source, corrupted).argmax())
    n_pos = len(clean_tokens)
    fn = logit_diff(answer, wrong) if metric == "logit_diff" else prob(answer)
    with _using(source) as model:
        sites = {
            "resid": lambda: Resid.every(model, n_pos),
            "attn": lambda: Attn.every(model, n_pos),
            "mlp": lambda: MLP.every(model, n_pos),
            "head": lambda: Head.every(model),
        }[site]()
        df = denoise(model, clean, corrupted, sites, fn, progress=False)
    if "pos" in df:
        df.insert(df.columns.get_loc("pos") + 1, "token", [clean_tokens[p] for p in df["pos"]])
    answers = decode(source, [answer, wrong])
    df.attrs.update(answer=answers[0], wrong=answers[1], same_answer=answer == wrong)
    return df
