"""Causal tracing (ROME, Meng et al. 2022): where does the model recall a fact about the subject?

1. Clean run: P(o), the probability of the answer o.
2. Corrupted runs: Gaussian noise (3x the embedding standard deviation) on the subject tokens' embeddings,
   one noise sample per batch row: P*(o), averaged over samples.
3. For every (layer, position), the corrupted runs again with one clean state restored there (by default
   the hidden state after the block, `ResidPost`; or `MLP`, `Attn`, any layer-wide site; optionally a window
   of layers): P*_restored(o).

Total effect TE = P(o) − P*(o); indirect effect IE = P*_restored(o) − P*(o). On the engine: the corrupted
run is the base (its edit, `add_noise` at `Embed(subject)`), each restoration a cell of `patch_from(clean)`
at the window's sites, so restorations run batched, each from the corrupted run's residual at its first
layer, and those that change nothing (positions before the subject) need no forward.
"""

from __future__ import annotations

import warnings

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.edits import add_noise, patch_from
from interp.analysis.engine import Input, Prompt, TokenLike, layer_window, prepare, scalar, sweep, token_ids
from interp.analysis.metrics import prob
from interp.analysis.specs import MLP, Attn, Embed, ResidPost, Site
from interp.transformer import HookedTransformer

KINDS: dict[str, type[Site]] = {
    "resid": ResidPost,
    "mlp": MLP,
    "attn": Attn,
}  # the deprecated `kind=` strings


def _char_spans(model: HookedTransformer, ids: list[int]) -> tuple[str, Tensor, Tensor]:
    """The prompt's text and each token's start and end character in it.

    From a fast tokenizer's offsets when re-encoding the decoded text gives back the same tokens: a
    byte-level BPE may split a character (CJK, emoji) over several tokens, whose decoded pieces are "�"
    and would throw piece lengths off. Otherwise, from the decoded pieces. Special tokens (BOS) are empty.
    """
    tok = model.tokenizer
    special = set(getattr(tok, "all_special_ids", ()))
    keep = [i for i, t in enumerate(ids) if t not in special]
    if getattr(tok, "is_fast", False) and keep:
        text = tok.decode([ids[i] for i in keep], clean_up_tokenization_spaces=False)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        if enc["input_ids"] == [ids[i] for i in keep]:
            starts, ends, end = [], [], 0
            offsets = iter(enc["offset_mapping"])
            for t in ids:
                a, end = (end, end) if t in special else next(offsets)
                starts.append(a)
                ends.append(end)
            return text, torch.tensor(starts), torch.tensor(ends)
    pieces = model.to_str_tokens(torch.tensor(ids))
    ends = torch.tensor([len(p) for p in pieces]).cumsum(0)
    return "".join(pieces), ends - torch.tensor([len(p) for p in pieces]), ends


def subject_span(model: HookedTransformer, tokens: Tensor, subject: str | tuple[int, int]) -> tuple[int, int]:
    """Token span [start, end) of the subject: given directly, or found as a substring of the prompt.

    Text is located with the tokenizer's character offsets where it has them (see `_char_spans`).
    """
    n_pos = tokens.shape[-1]
    if isinstance(subject, str):
        if model.tokenizer is None:
            raise ValueError(
                "the subject is text but the model has no tokenizer; pass a token span (start, end)"
            )
        text, starts, ends = _char_spans(model, tokens.reshape(-1, n_pos)[0].tolist())
        at = text.find(subject)
        if not subject or at < 0:
            raise ValueError(f"subject {subject!r} not found in the prompt {text!r}")
        start = int((ends <= at).sum())  # first token that ends after the subject begins
        end = int((starts < at + len(subject)).sum())  # one past the last token that starts inside it
        return start, end
    start, end = subject
    if not 0 <= start < end <= n_pos:
        raise ValueError(f"subject span {subject} is not a non-empty range within the {n_pos}-token prompt")
    return start, end


def causal_trace(
    model: HookedTransformer,
    prompt: Input,
    subject: str | tuple[int, int],
    answer: TokenLike | None = None,
    *,
    site: type[Site] = ResidPost,
    window: int = 1,
    n_samples: int = 10,
    noise_scale: float = 3.0,
    noise: Tensor | None = None,
    seed: int = 0,
    max_rows: int = 256,
    progress: bool | None = None,
    kind: str | None = None,
    target: TokenLike | None = None,
) -> pd.DataFrame:
    """Indirect effect of restoring each (layer, position); one row per cell.

    `site` is the layer-wide spec restored (`ResidPost`, `MLP`, `Attn`, `ResidMid`, ...). `answer` defaults
    to the clean run's top prediction; the metric is P(answer) at the last position. `window` restores
    `layer_window(l, window)`: [l − window//2, l − window//2 + window), clipped (ROME uses 10 for MLP
    and attention traces; an even window has one layer more below l than above it).
    `noise` ([n_samples, subject tokens, d_model]) overrides the seeded Gaussian noise.
    Columns: kind (the site's kind), layer, pos, token, subject (bool), p_restored, indirect_effect.
    attrs: p_clean, p_corrupted, total_effect, target (the answer id), subject_span, n_forward.
    Deprecated: `kind="resid" | "mlp" | "attn"` for `site=`, `target=` for `answer=`.
    """
    site = _site_for_kind(kind, site)
    answer = answer if target is None else target
    if window < 1 or n_samples < 1:
        raise ValueError(f"window and n_samples must be >= 1, got {window} and {n_samples}")
    clean = prepare(model, prompt)
    if clean.batch != 1 or clean.mask is not None:
        raise ValueError(f"causal tracing takes one prompt, got a batch of {clean.batch}")
    start, end = subject_span(model, clean.tokens, subject)
    noise = _subject_noise(model, (n_samples, end - start, model.cfg.d_model), noise, noise_scale, seed)
    extra = int(answer is None)  # finding the top prediction costs one forward
    target_id = _answer_id(model, clean.tokens, answer)
    metric = prob(target_id)
    restore = patch_from(clean)
    n, n_pos = model.cfg.n_layers, clean.n_pos
    grid = [(layer, pos) for layer in range(n) for pos in range(n_pos)]
    cells = [[(site(w, pos), restore) for w in layer_window(layer, window, n)] for layer, pos in grid]
    run = sweep(
        model,
        Prompt(clean.tokens.repeat(n_samples, 1), None),
        cells,
        metric,
        base_edits=[(Embed(tuple(range(start, end))), add_noise(noise.to(model.W_E)))],
        max_rows=max_rows,
        progress=progress,
        desc="causal trace",
    )
    p_clean, p_corr = scalar(metric(run.sources[id(clean)])), scalar(run.base)
    names = model.to_str_tokens(clean.tokens[0]) if model.tokenizer else clean.tokens[0].tolist()
    df = pd.DataFrame(
        [
            {
                "kind": site.kind,
                "layer": layer,
                "pos": pos,
                "token": names[pos],
                "subject": start <= pos < end,
            }
            for layer, pos in grid
        ]
    )
    df["p_restored"] = [scalar(v) for v in run.values]
    df["indirect_effect"] = df["p_restored"] - p_corr
    df.attrs.update(
        p_clean=p_clean,
        p_corrupted=p_corr,
        total_effect=p_clean - p_corr,
        target=target_id,
        subject_span=(start, end),
        n_forward=run.n_forward + extra,
    )
    return df


def _site_for_kind(kind: str | None, site: type[Site]) -> type[Site]:
    """The site a deprecated `kind=` string names (with its warning), else `site`."""
    if kind is None:
        return site
    if kind not in KINDS:
        raise ValueError(f"kind must be 'resid', 'mlp' or 'attn', got {kind!r}")
    warnings.warn(
        "causal_trace(kind=...) is deprecated: pass site=ResidPost, MLP or Attn",
        DeprecationWarning,
        stacklevel=3,
    )
    return KINDS[kind]


def _subject_noise(
    model: HookedTransformer, shape: tuple[int, int, int], noise: Tensor | None, scale: float, seed: int
) -> Tensor:
    """The given noise, checked against [n_samples, subject tokens, d_model]; or seeded Gaussian noise of
    `scale` times the embedding's standard deviation."""
    if noise is None:
        std = scale * float(model.W_E.detach().float().std())
        return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * std
    if tuple(noise.shape) != shape:
        raise ValueError(f"noise must have shape {shape}, got {tuple(noise.shape)}")
    return noise


def _answer_id(model: HookedTransformer, tokens: Tensor, answer: TokenLike | None) -> int:
    """The answer's token id; by default the clean run's top prediction (one forward of one row)."""
    if answer is None:
        with torch.no_grad():
            resid = model(tokens, stop_at_layer=model.cfg.n_layers)[:, -1]
            answer = int(model.unembed(model.ln_final(resid)).argmax(-1))
    return int(token_ids(model, answer, 1)[0])
