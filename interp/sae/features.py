"""Feature tables for one dictionary over a corpus, streamed in batches, as tidy DataFrames.

- `top_contexts`: the top-activating tokens per latent, with the text around them;
- `activation_stats` / `activation_histogram`: how often each latent fires and how strongly;
- `vocab_projection`: the tokens each decoder direction promotes and suppresses (W_dec @ W_U);
- `prompt_latents`: the latents most active on one prompt, with attribution to a metric (act × ∂metric/∂act);
- `top_latents`: the same, plus each latent's top contexts in a corpus and its vocabulary projection, the
  three tables a "features" view shows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.sae.sae import SAE
from interp.sae.store import Corpus, prompt_batches, stop_layer


def _latents(
    model: Any, sae: SAE, corpus: Corpus, batch_prompts: int, progress: bool
) -> Iterator[tuple[int, Tensor, Tensor, Tensor]]:
    """(first prompt index, tokens, mask, latent activations [batch, pos, d_sae]) per batch; padding is 0."""
    start = 0
    batches = prompt_batches(model, corpus, batch_prompts)
    for tokens, mask in tqdm(
        batches, desc="latents", total=-(-len(corpus) // batch_prompts), disable=not progress
    ):
        _, cache = model.run_with_cache(
            tokens, attention_mask=mask, names_filter=sae.cfg.hook_name,
            stop_at_layer=stop_layer(model, [sae.cfg.hook_name]),
        )  # fmt: skip
        with torch.no_grad():
            acts = sae.encode(sae.flatten(cache[sae.cfg.hook_name]))
        yield start, tokens, mask, acts * mask[..., None].to(acts.dtype)
        start += tokens.shape[0]


def top_contexts(
    model: Any, sae: SAE, corpus: Corpus, n: int = 10, window: int = 8, batch_prompts: int = 64,
    latents: list[int] | None = None, progress: bool = True,
) -> pd.DataFrame:  # fmt: skip
    """For each latent, its `n` highest activations in the corpus: columns latent, rank, activation, prompt,
    pos, token, context (up to `window` tokens before it and 2 after, the token itself in [brackets])."""
    chosen = torch.arange(sae.cfg.d_sae) if latents is None else torch.tensor(latents)
    best = torch.full((len(chosen), n), -1.0)
    where = torch.full((len(chosen), n, 2), -1, dtype=torch.long)
    token_rows: dict[int, Tensor] = {}
    for start, tokens, mask, acts in _latents(model, sae, corpus, batch_prompts, progress):
        a = acts[..., chosen].flatten(0, 1).T  # [latent, batch*pos]
        top = a.topk(min(n, a.shape[1]), dim=-1)
        both = torch.cat([best, top.values], dim=1)
        pos = torch.stack([top.indices // tokens.shape[1] + start, top.indices % tokens.shape[1]], -1)
        keep = both.topk(n, dim=-1).indices
        best = both.gather(1, keep)
        where = torch.cat([where, pos], dim=1).gather(1, keep[..., None].expand(-1, -1, 2))
        for i, row in enumerate(tokens):
            token_rows[start + i] = row[mask[i].bool()]
    rows = []
    for li, latent in enumerate(chosen.tolist()):
        for rank in range(n):
            act = float(best[li, rank])
            if act <= 0:
                break  # fewer than n firings: the rest would be noise
            p, q = (int(v) for v in where[li, rank])
            toks = token_rows[p].tolist()
            pieces = [_piece(model, t) for t in toks]
            before = "".join(pieces[max(0, q - window) : q])
            context = f"{before}[{pieces[q]}]{''.join(pieces[q + 1 : q + 3])}"
            rows.append({"latent": latent, "rank": rank, "activation": act, "prompt": p, "pos": q, "token": pieces[q], "context": context})  # fmt: skip
    return pd.DataFrame(rows, columns=["latent", "rank", "activation", "prompt", "pos", "token", "context"])


def activation_stats(
    model: Any, sae: SAE, corpus: Corpus, batch_prompts: int = 64, progress: bool = True
) -> pd.DataFrame:
    """Per latent: frequency (share of real tokens where it fires), mean activation when active, max."""
    fired = torch.zeros(sae.cfg.d_sae)
    total = torch.zeros(sae.cfg.d_sae)
    peak = torch.zeros(sae.cfg.d_sae)
    n_tokens = 0
    for _, _, mask, acts in _latents(model, sae, corpus, batch_prompts, progress):
        flat = acts[mask.bool()]
        n_tokens += flat.shape[0]
        fired += (flat > 0).sum(0)
        total += flat.sum(0)
        peak = torch.maximum(peak, flat.amax(0))
    freq = fired / max(n_tokens, 1)
    mean = torch.where(fired > 0, total / fired.clamp_min(1), torch.zeros_like(total))
    return pd.DataFrame({"latent": range(sae.cfg.d_sae), "frequency": freq.numpy(), "mean_active": mean.numpy(), "max": peak.numpy()})  # fmt: skip


def activation_histogram(
    model: Any, sae: SAE, corpus: Corpus, bins: int = 20, batch_prompts: int = 64, progress: bool = True
) -> pd.DataFrame:
    """The distribution of log10(activation) over the tokens where each latent fires: latent, bin_left,
    bin_right, count (bins shared across latents, from 1e-3 to the largest activation seen)."""
    chunks = [acts[mask.bool()] for _, _, mask, acts in _latents(model, sae, corpus, batch_prompts, progress)]
    flat = torch.cat(chunks)
    top = float(flat.max()) if flat.numel() else 1.0
    edges = torch.linspace(-3.0, max(torch.log10(torch.tensor(max(top, 1e-3))).item(), -2.0), bins + 1)
    rows = []
    for latent in range(sae.cfg.d_sae):
        col = flat[:, latent]
        col = col[col > 0].log10().clamp(float(edges[0]), float(edges[-1]))
        counts = (
            torch.histc(col, bins=bins, min=float(edges[0]), max=float(edges[-1]))
            if col.numel()
            else torch.zeros(bins)
        )
        rows += [{"latent": latent, "bin_left": float(edges[i]), "bin_right": float(edges[i + 1]), "count": int(counts[i])} for i in range(bins)]  # fmt: skip
    return pd.DataFrame(rows)


def vocab_projection(model: Any, sae: SAE, k: int = 10, latents: list[int] | None = None) -> pd.DataFrame:
    """Each decoder direction read by the unembedding (W_dec @ W_U): its top and bottom `k` tokens.

    Only for dictionaries that write into the residual stream (residual, attn_out, mlp_out hooks)."""
    if sae.cfg.out_dim != model.cfg.d_model or sae.cfg.reshape_activations == "hook_z":
        raise ValueError(
            f"{sae.cfg.write_hook} is not in the residual basis (width {sae.cfg.out_dim}, d_model {model.cfg.d_model}); "
            "the vocabulary projection needs a dictionary that writes residual-stream vectors"
        )
    chosen = list(range(sae.cfg.d_sae)) if latents is None else list(latents)
    with torch.no_grad():
        logits = sae.W_dec[chosen].to(model.W_U.dtype) @ model.W_U  # [latent, d_vocab]
    rows = []
    for side, largest in (("top", True), ("bottom", False)):
        vals, idx = logits.topk(k, dim=-1, largest=largest)
        for li, latent in enumerate(chosen):
            rows += [{"latent": latent, "side": side, "rank": r, "token": _piece(model, int(idx[li, r])), "logit": float(vals[li, r])} for r in range(k)]  # fmt: skip
    return pd.DataFrame(rows)


def prompt_latents(
    model: Any, sae: SAE, prompt: str | Tensor, metric: Callable[[Tensor], Tensor] | None = None, k: int = 10
) -> pd.DataFrame:
    """The `k` latents most active on `prompt` per position (pos, token, latent, activation), with
    `attribution` = act × ∂metric/∂act when a metric is given (the metric gets the logits [batch, pos,
    d_vocab]; it returns a scalar). The splice uses the error term, so the logits are the model's own."""
    tokens = (
        model.to_tokens(prompt) if isinstance(prompt, str) else (prompt[None] if prompt.ndim == 1 else prompt)
    )
    if tokens.shape[0] != 1:
        raise ValueError(f"prompt_latents takes one prompt, got a batch of {tokens.shape[0]}")
    name = f"{sae.cfg.write_hook}.hook_sae_acts_post"
    store: dict[str, Tensor] = {}

    def keep(act: Tensor, hook: Any) -> None:
        act.retain_grad() if act.requires_grad else None
        store["acts"] = act

    with model.saes([sae], use_error_term=True), model.hooks([(name, keep)]), torch.enable_grad():
        if metric is not None:
            for p in sae.parameters():
                p.requires_grad_(True)
            try:
                logits = model(tokens)
                value = metric(logits)
                if value.ndim:
                    raise ValueError(f"the metric must return a scalar, got shape {tuple(value.shape)}")
                value.backward()
            finally:
                for p in sae.parameters():
                    p.requires_grad_(False)
                    p.grad = None
        else:
            model(tokens)
    acts = store["acts"].detach()[0]
    grads = store["acts"].grad[0] if metric is not None and store["acts"].grad is not None else None
    rows = []
    pieces = [_piece(model, int(t)) for t in tokens[0]]
    vals, idx = acts.topk(min(k, acts.shape[-1]), dim=-1)
    for pos in range(acts.shape[0]):
        for r in range(vals.shape[1]):
            if vals[pos, r] <= 0:
                break
            row = {
                "pos": pos,
                "token": pieces[pos],
                "latent": int(idx[pos, r]),
                "activation": float(vals[pos, r]),
            }
            if grads is not None:
                row["attribution"] = float(vals[pos, r] * grads[pos, idx[pos, r]])
            rows.append(row)
    return pd.DataFrame(rows)


def top_latents(
    model: Any, sae: SAE, prompt: str | Tensor, corpus: Corpus | None = None, k: int = 5, n_contexts: int = 5,
    n_tokens: int = 8, metric: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, pd.DataFrame]:  # fmt: skip
    """What a "features" view shows for one prompt: `latents`, the `k` most active latents per position
    (`prompt_latents`); `contexts`, the top `n_contexts` contexts in `corpus` of every latent listed there
    (empty without a corpus); `vocab`, their vocabulary projections (empty when the dictionary does not
    write residual-stream vectors)."""
    latents = prompt_latents(model, sae, prompt, metric=metric, k=k)
    chosen = sorted(set(latents.latent.tolist())) if len(latents) else []
    empty = pd.DataFrame()
    contexts = (
        top_contexts(model, sae, corpus, n=n_contexts, latents=chosen, progress=False)
        if corpus is not None and chosen
        else empty
    )
    writes_resid = sae.cfg.out_dim == model.cfg.d_model and sae.cfg.reshape_activations != "hook_z"
    vocab = vocab_projection(model, sae, k=n_tokens, latents=chosen) if chosen and writes_resid else empty
    return {"latents": latents, "contexts": contexts, "vocab": vocab}


def _piece(model: Any, token: int) -> str:
    tok = getattr(model, "tokenizer", None)
    return tok.decode([token]) if tok is not None else f"<{token}>"
