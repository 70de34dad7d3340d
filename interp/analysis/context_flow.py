"""Context flow: attention's ΔE split by destination, source and head.

For a layer, head h moves into destination d the vector pattern[h, d, s] · (v_s W_O^h) from each source s.
These contributions sum over sources and heads, plus b_O, to attn_out[d] exactly: ΔE = Σ_s Σ_h c[d, s, h] + b_O.

The full tensor is T²·H·d_model per layer, so it is built one layer at a time and for the requested
destinations only. Importance follows Ferrando & Voita (2024): a part's proximity to the whole is
max(0, ‖whole‖₁ − ‖whole − part‖₁), renormalised over the parts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.analysis.engine import Input, prepare
from interp.analysis.specs import Attn, Head, ResidPre, Site, check_layers, head_outputs
from interp.transformer import HookedTransformer


def importance(parts: Float[Tensor, "... part d_model"], whole: Float[Tensor, "... d_model"]) -> Tensor:
    """Ferrando & Voita proximity of each part to the whole, renormalised to sum to 1 over parts."""
    whole = whole[..., None, :]
    prox = (whole.abs().sum(-1) - (whole - parts).abs().sum(-1)).clamp(min=0)
    return prox / prox.sum(-1, keepdim=True)  # all-zero proximities give NaN: no part resembles the whole


@dataclass(frozen=True)
class ContextFlow:
    """One layer's attention contributions for one example, at the requested destinations."""

    layer: int
    destinations: list[int]
    tokens: list  # token strings (or ids) of the whole prompt
    contributions: Tensor  # [dest, src, head, d_model]; zero where a source is masked
    b_O: Tensor  # [d_model] (zeros when the model has none)
    resid_pre: Tensor  # [dest, d_model]: E, the residual entering the layer
    attn_out: Tensor  # [dest, d_model]: ΔE = contributions.sum((1, 2)) + b_O

    def summary(self, k: int = 3) -> pd.DataFrame:
        """Per destination: ‖ΔE‖/‖E‖, the share of ΔE from other positions, and the top sources and heads.

        Shares and rankings use the Ferrando & Voita importance with the bias-free ΔE as the whole:
        by source (summed over heads) and by head (summed over sources).
        """
        c = self.contributions
        whole = c.sum((1, 2))
        by_src = importance(c.sum(2), whole)  # [dest, src]
        by_head = importance(c.sum(1), whole)  # [dest, head]
        rows = []
        for i, d in enumerate(self.destinations):
            top_s = by_src[i].nan_to_num(0).topk(min(k, c.shape[1]))
            top_h = by_head[i].nan_to_num(0).topk(min(k, c.shape[2]))
            rows.append(
                {
                    "layer": self.layer,
                    "dest": d,
                    "token": self.tokens[d],
                    "delta_ratio": float(self.attn_out[i].norm() / self.resid_pre[i].norm()),
                    "other_share": float(1 - by_src[i, d]),
                    "top_sources": list(zip(top_s.indices.tolist(), top_s.values.tolist(), strict=True)),
                    "top_heads": list(zip(top_h.indices.tolist(), top_h.values.tolist(), strict=True)),
                }
            )
        return pd.DataFrame(rows)

    def graph(self, threshold: float = 0.01) -> pd.DataFrame:
        """Edges into each destination's resid_mid, with Ferrando & Voita importances over all its parts.

        Parts: the residual (E at the destination itself, kind "residual"), each (source, head)
        contribution (kind "head"), and b_O (kind "bias"). Edges below `threshold` are dropped.
        """
        c = self.contributions
        n_dest, n_src, n_head, d_model = c.shape
        parts = torch.cat(
            [self.resid_pre[:, None], c.flatten(1, 2), self.b_O.expand(n_dest, 1, d_model)], dim=1
        )  # [dest, 1 + src*head + 1, d_model]
        weights = importance(parts, self.resid_pre + self.attn_out)
        src = torch.arange(n_src).repeat_interleave(n_head).tolist()
        head = torch.arange(n_head).repeat(n_src).tolist()
        rows = []
        for i, d in enumerate(self.destinations):
            w = weights[i].tolist()
            rows.append(
                {
                    "layer": self.layer,
                    "dest": d,
                    "src": d,
                    "head": None,
                    "kind": "residual",
                    "importance": w[0],
                }
            )
            rows += [
                {"layer": self.layer, "dest": d, "src": s, "head": h, "kind": "head", "importance": v}
                for s, h, v in zip(src, head, w[1:-1], strict=True)
            ]
            rows.append(
                {
                    "layer": self.layer,
                    "dest": d,
                    "src": None,
                    "head": None,
                    "kind": "bias",
                    "importance": w[-1],
                }
            )
        df = pd.DataFrame(rows)
        df = df[df["importance"] >= threshold].reset_index(drop=True)
        for col in ("src", "head"):
            df[col] = df[col].astype("Int64")
        return df


def _flow_cache(
    model: HookedTransformer,
    input: Input,
    layers: Sequence[int],
    destinations: Sequence[int] | None,
    example: int,
) -> tuple[dict[str, Tensor], list]:
    prompt = prepare(model, input)
    if not 0 <= example < prompt.batch:
        raise ValueError(f"example {example} out of range for a batch of {prompt.batch}")
    if destinations is not None and any(not -prompt.n_pos <= d < prompt.n_pos for d in destinations):
        raise ValueError(f"destinations {list(destinations)} out of range for a {prompt.n_pos}-token input")
    check_layers(model, layers)
    names = [site.hook_name for layer in layers for site in _sites(layer)]
    _, cache = model.run_with_cache(prompt.tokens, names_filter=names, attention_mask=prompt.mask)
    tokens = prompt.tokens[example]
    labels = model.to_str_tokens(tokens) if model.tokenizer is not None else tokens.tolist()
    return {k: v[example] for k, v in cache.items()}, labels


def _sites(layer: int) -> tuple[Site, Site, Site, Site]:
    """What one layer's flow reads: E, ΔE, the values and the pattern."""
    return ResidPre(layer), Attn(layer), Head(layer, 0, part="v"), Head(layer, 0, part="pattern")


def _layer_flow(
    model: HookedTransformer,
    acts: dict[str, Tensor],
    labels: list,
    layer: int,
    destinations: Sequence[int] | None,
) -> ContextFlow:
    n_pos = len(labels)
    dests = list(range(n_pos)) if destinations is None else [d % n_pos for d in destinations]
    attn = model.blocks[layer].attn
    resid_pre, attn_out, v_site, pattern_site = (s.hook_name for s in _sites(layer))
    v = acts[v_site]  # [src, kv_head, d_head]
    v = v.repeat_interleave(attn.n_heads // attn.n_kv_heads, dim=1)  # grouped kv heads serve several queries
    pattern = acts[pattern_site][:, dests]  # [head, dest, src]
    with torch.no_grad(), model.weights_of(model.blocks[layer]):  # an offloaded block's, fetched
        moved = head_outputs(v, attn.W_O)  # [src, head, d_model]: what each head would move from each source
        contributions = torch.einsum("hds,shm->dshm", pattern, moved)
        b_O = attn.b_O.detach() if attn.b_O is not None else torch.zeros(model.cfg.d_model, device=v.device)
    return ContextFlow(
        layer=layer,
        destinations=dests,
        tokens=labels,
        contributions=contributions,
        b_O=b_O,
        resid_pre=acts[resid_pre][dests],
        attn_out=acts[attn_out][dests],
    )


def context_flow(
    model: HookedTransformer,
    input: Input,
    layer: int,
    destinations: Sequence[int] | None = None,
    *,
    example: int = 0,
) -> ContextFlow:
    """The (destination, source, head) contributions of one layer, for one example of the batch."""
    acts, labels = _flow_cache(model, input, [layer], destinations, example)
    return _layer_flow(model, acts, labels, layer, destinations)


def flow_summary(
    model: HookedTransformer,
    input: Input,
    layers: Sequence[int] | None = None,
    destinations: Sequence[int] | None = None,
    *,
    k: int = 3,
    example: int = 0,
) -> pd.DataFrame:
    """`ContextFlow.summary` for each layer (default all), one forward, one layer's tensor at a time."""
    return _per_layer(model, input, layers, destinations, example, lambda flow: flow.summary(k))


def flow_graph(
    model: HookedTransformer,
    input: Input,
    layers: Sequence[int] | None = None,
    destinations: Sequence[int] | None = None,
    *,
    threshold: float = 0.01,
    example: int = 0,
) -> pd.DataFrame:
    """`ContextFlow.graph` edges for each layer (default all): the Ferrando & Voita contribution graph."""
    return _per_layer(model, input, layers, destinations, example, lambda flow: flow.graph(threshold))


def _per_layer(
    model: HookedTransformer,
    input: Input,
    layers: Sequence[int] | None,
    destinations: Sequence[int] | None,
    example: int,
    table: Callable[[ContextFlow], pd.DataFrame],
) -> pd.DataFrame:
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    acts, labels = _flow_cache(model, input, layers, destinations, example)
    frames = [table(_layer_flow(model, acts, labels, layer, destinations)) for layer in layers]
    return pd.concat(frames, ignore_index=True)
