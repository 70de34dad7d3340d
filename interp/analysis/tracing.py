"""Causal tracing (ROME, Meng et al. 2022): where does the model recall a fact about the subject?

1. Clean run: P(o), the probability of the answer o.
2. Corrupted runs: Gaussian noise (3x the embedding standard deviation) on the subject tokens' embeddings,
   one noise sample per batch row: P*(o), averaged over samples.
3. For every (layer, position), the corrupted runs again with one clean state restored there (the hidden
   state after the block, the MLP output or the attention output; optionally a window of layers):
   P*_restored(o).

Total effect TE = P(o) − P*(o); indirect effect IE = P*_restored(o) − P*(o). All restorations run
batched, each starting at the restored block from the corrupted run's cached residual.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.metrics import prob
from interp.analysis.patching import copy_edit
from interp.analysis.runner import (
    CellRun,
    Input,
    Prompt,
    TokenLike,
    cached_run,
    edits_by_hook,
    layer_window,
    prepare,
    run_cells,
    scalar,
    token_ids,
)
from interp.analysis.specs import MLP, Attn, Resid, Spec
from interp.hooks import HookPoint
from interp.transformer import HookedTransformer

Kind = Literal["resid", "mlp", "attn"]


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


def _site(kind: Kind, layer: int, pos: int) -> Spec:
    if kind == "resid":
        return Resid(layer, pos, "post")  # ROME's hidden state h_i^(l) is the block's output
    if kind == "mlp":
        return MLP(layer, pos)
    return Attn(layer, pos)


def causal_trace(
    model: HookedTransformer,
    prompt: Input,
    subject: str | tuple[int, int],
    target: TokenLike | None = None,
    *,
    kind: Kind = "resid",
    window: int = 1,
    n_samples: int = 10,
    noise_scale: float = 3.0,
    noise: Tensor | None = None,
    seed: int = 0,
    max_rows: int = 256,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Indirect effect of restoring each (layer, position); one row per cell.

    `target` defaults to the clean run's top prediction. `window` restores layers
    [l − window//2, l + window//2] around l, clipped (ROME uses 10 for MLP and attention traces).
    `noise` ([n_samples, subject tokens, d_model]) overrides the seeded Gaussian noise.
    Columns: kind, layer, pos, token, subject (bool), p_restored, indirect_effect.
    attrs: p_clean, p_corrupted, total_effect, target, subject_span, n_forward.
    """
    if kind not in ("resid", "mlp", "attn"):
        raise ValueError(f"kind must be 'resid', 'mlp' or 'attn', got {kind!r}")
    if window < 1 or n_samples < 1:
        raise ValueError(f"window and n_samples must be >= 1, got {window} and {n_samples}")
    clean = prepare(model, prompt)
    if clean.batch != 1 or clean.mask is not None:
        raise ValueError(f"causal tracing takes one prompt, got a batch of {clean.batch}")
    start, end = subject_span(model, clean.tokens, subject)
    n, n_pos = model.cfg.n_layers, clean.n_pos
    if noise is None:
        std = noise_scale * float(model.W_E.detach().float().std())
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(n_samples, end - start, model.cfg.d_model, generator=gen) * std
    elif noise.shape != (n_samples, end - start, model.cfg.d_model):
        raise ValueError(
            f"noise must have shape {(n_samples, end - start, model.cfg.d_model)}, got {tuple(noise.shape)}"
        )
    noise = noise.to(model.W_E)

    kinds = [_site(kind, layer, 0).hook_name for layer in range(n)]
    last = torch.tensor([n_pos - 1], device=clean.tokens.device)
    clean_run = cached_run(model, clean, kinds, last)
    answer = clean_run.logits.argmax(-1) if target is None else token_ids(model, target, 1)
    metric = prob(answer[0])

    def corrupt(x: Tensor, hook: HookPoint) -> Tensor:
        x = x.clone()
        x[:, start:end] += noise
        return x

    noisy = Prompt(clean.tokens.repeat(n_samples, 1), None)
    resid_names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n)]
    corr_run = cached_run(model, noisy, resid_names, last.repeat(n_samples), hooks=[("hook_embed", corrupt)])

    rows, cells, live = [], [], []
    for layer in range(n):
        layers = layer_window(layer, window, n)
        for pos in range(n_pos):
            rows.append({"kind": kind, "layer": layer, "pos": pos, "subject": start <= pos < end})
            if pos < start:
                continue  # the noise cannot reach positions before the subject: restoring them is a no-op
            sites = [_site(kind, w, pos) for w in layers]
            edits = [(s.hook_name, copy_edit(clean_run.cache[s.hook_name], s.selector)) for s in sites]
            cells.append(CellRun(layers[0], edits_by_hook(edits)))
            live.append(len(rows) - 1)
    values, n_forward = run_cells(
        model,
        noisy,
        lambda layer: corr_run.cache[f"blocks.{layer}.hook_resid_pre"],
        cells,
        metric,
        last.repeat(n_samples),
        max_rows=max_rows,
        progress=progress,
        desc="causal trace",
    )
    p_clean, p_corr = scalar(metric(clean_run.logits)), scalar(metric(corr_run.logits))
    df = pd.DataFrame(rows)
    names = model.to_str_tokens(clean.tokens[0]) if model.tokenizer else clean.tokens[0].tolist()
    df.insert(3, "token", [names[p] for p in df["pos"]])
    restored = [p_corr] * len(rows)
    for i, v in zip(live, values, strict=True):
        restored[i] = scalar(v)
    df["p_restored"] = restored
    df["indirect_effect"] = df["p_restored"] - p_corr
    df.attrs.update(
        p_clean=p_clean,
        p_corrupted=p_corr,
        total_effect=p_clean - p_corr,
        target=int(answer[0]),
        subject_span=(start, end),
        n_forward=n_forward + 2,
    )
    return df
