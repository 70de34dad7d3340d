"""Logit lens and direct logit attribution: reading the residual stream in vocabulary space.

Logit lens (nostalgebraist 2020): push the residual after each block through ln_final and W_U as if it
were the last one. Row `layer = l` reads the residual after l blocks (0 = the embeddings, n_layers = the
model's real output).

Direct logit attribution: ln_final is linear once its scale is frozen at this run's value, so the logit
is a sum over everything written into the residual stream: embeddings, each head, each attention bias,
each MLP (or each neuron and the MLP bias), plus a constant (ln_final's bias through W_U, and b_U).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.engine import Input, ReadPos, TokenLike, prepare, read_index, token_ids
from interp.analysis.metrics import upcast
from interp.analysis.specs import MLP, Embed, Head, MLPPost, PosEmbed, ResidFinal, ResidPre, head_outputs
from interp.cache import act_name
from interp.transformer import HookedTransformer

_UNSET = object()


def logit_lens(
    model: HookedTransformer,
    input: Input,
    answer: TokenLike | None = None,
    *,
    k: int = 5,
    read_pos: int | list[int] | Literal["all"] | None = "all",
    positions: object = _UNSET,
    target: TokenLike | None = None,
) -> pd.DataFrame:
    """One row per (example, layer, pos): top-k tokens, answer probability and rank, KL to the final output.

    `answer` (one id, or one per example) defaults to the model's final top prediction at each position.
    `read_pos` is "all" (every position, the default), None (each example's last real token, which differs
    per row in a padded batch), an int or a list. Padding positions never get rows.
    Columns: example, layer, pos, top_ids, top_probs (and top_tokens with a tokenizer), target (the answer
    id), target_prob, target_rank (0 = top), kl_to_final (KL(final ‖ layer), nats).
    Deprecated: `positions=` (None for all, "last" for the last real token) and `target=` for `answer=`.
    """
    if positions is not _UNSET:
        read_pos = "all" if positions is None else None if positions == "last" else positions  # type: ignore[assignment]
    answer = answer if target is None else target
    prompt = prepare(model, input)
    n = model.cfg.n_layers
    if read_pos is None:
        idx = prompt.last_pos()[:, None]
    else:
        pos = (
            list(range(prompt.n_pos))
            if read_pos == "all"
            else [read_pos]
            if isinstance(read_pos, int)
            else read_pos
        )
        bad = [p for p in pos if not -prompt.n_pos <= p < prompt.n_pos]
        if bad:
            raise ValueError(f"positions {bad} out of range for a {prompt.n_pos}-token input")
        idx = torch.tensor([p % prompt.n_pos for p in pos]).expand(prompt.batch, -1)
    idx = idx.to(prompt.tokens.device)
    rows = torch.arange(prompt.batch, device=idx.device)[:, None]
    n_read = idx.shape[1]
    names = [ResidPre(layer).hook_name for layer in range(n)] + [ResidFinal().at(model).hook_name]
    _, cache = model.run_with_cache(prompt.tokens, names_filter=names, attention_mask=prompt.mask)
    with torch.no_grad():
        final = upcast(model.unembed(model.ln_final(cache[names[-1]][rows, idx]))).log_softmax(-1)
    if answer is None:
        tgt = final.argmax(-1)  # [batch, pos]
    else:
        tgt = token_ids(model, answer, prompt.batch)[:, None].expand(-1, n_read)
    frames = []
    for layer, name in enumerate(names):
        with torch.no_grad():
            logp = upcast(model.unembed(model.ln_final(cache[name][rows, idx]))).log_softmax(-1)
        top = logp.topk(k, dim=-1)
        t_logp = logp.gather(-1, tgt[..., None]).squeeze(-1)
        rank = (logp > t_logp[..., None]).sum(-1)
        kl = (final.exp() * (final - logp)).sum(-1)
        b, p = rows.expand_as(idx), idx
        frame = pd.DataFrame(
            {
                "example": b.flatten().tolist(),
                "layer": layer,
                "pos": p.flatten().tolist(),
                "top_ids": top.indices.flatten(0, 1).tolist(),
                "top_probs": top.values.exp().flatten(0, 1).tolist(),
                "target": tgt.flatten().tolist(),
                "target_prob": t_logp.exp().flatten().tolist(),
                "target_rank": rank.flatten().tolist(),
                "kl_to_final": kl.flatten().tolist(),
            }
        )
        frames.append(frame)
    df = pd.concat(frames, ignore_index=True)
    if prompt.mask is not None:
        real = prompt.mask.bool().cpu()[torch.tensor(df["example"].values), torch.tensor(df["pos"].values)]
        df = df[real.numpy()].reset_index(drop=True)
    if model.tokenizer is not None:
        decode = model.tokenizer.decode
        df.insert(4, "top_tokens", [[decode([i]) for i in ids] for ids in df["top_ids"]])
    return df


def direct_logit_attribution(
    model: HookedTransformer,
    input: Input,
    answer: TokenLike | None = None,
    incorrect: TokenLike | None = None,
    *,
    read_pos: ReadPos = None,
    neurons: bool = False,
    target: TokenLike | None = None,
) -> pd.DataFrame:
    """Each component's direct contribution to logit[answer] (− logit[incorrect]), averaged over the batch.

    Rows: embed, pos_embed (learned positions), one per head, attn_bias and mlp per layer; with
    `neurons`, one per MLP neuron plus mlp_bias instead of mlp. The attributions sum to the logit (or
    logit difference) minus attrs["constant"]; attrs["logit"] is the model's actual value.
    Columns: component, layer, head, neuron, attribution. Deprecated: `target=` for `answer=`.
    """
    answer = answer if target is None else target
    if answer is None:
        raise ValueError("direct logit attribution needs an answer token (answer=...)")
    prompt = prepare(model, input)
    index = read_index(prompt, read_pos)
    if not isinstance(index, Tensor):
        raise ValueError("direct logit attribution reads one position per example; give read_pos as an int")
    cfg = model.cfg
    ids = token_ids(model, answer, prompt.batch)
    direction = model.tokens_to_residual_directions(ids)  # [batch, d_model]: W_U columns
    const = _readout_constant(model, ids)
    if incorrect is not None:
        wrong = token_ids(model, incorrect, prompt.batch)
        direction = direction - model.tokens_to_residual_directions(wrong)
        const = const - _readout_constant(model, wrong)
    with model.weights_of(model.ln_final):  # an offloaded ln_final's, fetched
        direction = direction * getattr(model.ln_final, "w", 1.0)  # ln_final's weight: no folding needed
    scale_name = act_name("scale")  # ln_final's scale, frozen at this run's value
    embeds = [Embed(), *([PosEmbed()] if model.pos_embed is not None else [])]
    names = [scale_name, *(e.hook_name for e in embeds)]
    for layer in range(cfg.n_layers):
        names += [Head(layer, 0).hook_name, (MLPPost(layer) if neurons else MLP(layer)).hook_name]
    logits, cache = model.run_with_cache(prompt.tokens, names_filter=names, attention_mask=prompt.mask)
    rows = torch.arange(prompt.batch, device=index.device)
    scale = cache[scale_name][rows, index]  # [batch, 1]

    def attr(x: Tensor) -> Tensor:
        """[batch, ..., d_model] at the read positions -> mean over the batch of its logit contribution."""
        d = direction.view(prompt.batch, *[1] * (x.ndim - 2), -1)
        s = scale.view(prompt.batch, *[1] * (x.ndim - 1))
        return (model.ln_final.center(x) / s * d).sum(-1).mean(0)

    out: list[dict] = []
    with torch.no_grad():
        for e in embeds:
            out.append({"component": e.kind, "attribution": float(attr(cache[e.hook_name][rows, index]))})
        for layer in range(cfg.n_layers):
            block = model.blocks[layer]
            with model.weights_of(block):  # an offloaded block's, fetched
                z = cache[Head(layer, 0).hook_name][rows, index]  # [batch, head, d_head]
                out += _rows("head", layer, attr(head_outputs(z, block.attn.W_O)))
                if block.attn.b_O is not None:
                    b_O = block.attn.b_O.expand(prompt.batch, -1)
                    out.append({"component": "attn_bias", "layer": layer, "attribution": float(attr(b_O))})
                if not neurons:
                    mlp = cache[MLP(layer).hook_name][rows, index]
                    out.append({"component": "mlp", "layer": layer, "attribution": float(attr(mlp))})
                    continue  # leaves the with block: the fetched weights are dropped
                post = cache[MLPPost(layer).hook_name][rows, index]  # [batch, d_mlp]
                out += _rows("neuron", layer, attr(post[..., None] * block.mlp.W_out))  # one per neuron
                if block.mlp.b_out is not None:
                    b_out = block.mlp.b_out.expand(prompt.batch, -1)
                    out.append({"component": "mlp_bias", "layer": layer, "attribution": float(attr(b_out))})
    df = pd.DataFrame(out)
    df = df[[c for c in ("component", "layer", "head", "neuron", "attribution") if c in df]]
    for col in ("layer", "head", "neuron"):
        if col in df:
            df[col] = df[col].astype("Int64")  # nullable ints: embeddings have no layer
    actual = upcast(logits[rows, index]).gather(-1, ids[:, None]).squeeze(-1)
    if incorrect is not None:
        actual = actual - upcast(logits[rows, index]).gather(-1, wrong[:, None]).squeeze(-1)
    df.attrs.update(logit=float(actual.mean()), constant=float(const.mean()))
    return df


def _rows(component: str, layer: int, values: Tensor) -> list[dict]:
    """One row per head or neuron of a layer."""
    return [
        {"component": component, "layer": layer, component: i, "attribution": float(v)}
        for i, v in enumerate(values)
    ]


def _readout_constant(model: HookedTransformer, ids: Tensor) -> Tensor:
    """The part of logit[id] no component writes: ln_final's bias through W_U, plus b_U."""
    const = torch.zeros(ids.shape, device=ids.device)
    with model.weights_of(model.ln_final), model.weights_of(model.unembed):  # offloaded: fetched
        b = getattr(model.ln_final, "b", None)
        if b is not None:
            const = const + (b @ model.W_U[:, ids]).float()
        const = const + model.unembed.b_U[ids].float()  # zeros without a bias
    return const.detach()
