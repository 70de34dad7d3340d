"""E' = E + ΔE in tokens: what one attention layer adds to one token's residual, read in vocabulary space.

At layer l and position p, E is resid_pre, ΔE is attn_out and E' = E + ΔE is resid_mid. This module reads
all three as tokens:

- the logit lens of E and of E' (each pushed through ln_final and W_U as if it were the last residual);
- cos(E, E') and ‖ΔE‖/‖E‖;
- ΔE split by head, ΔE_h = z_h W_O[h] (plus b_O), each part's direct logit attribution to the target and
  the tokens it promotes. Direct attribution freezes ln_final's scale at the *final* residual of position p
  (this run's value), so the parts' attributions add up to the whole ΔE's, and the model's own logit is
  the sum over every component (interp.analysis.lens.direct_logit_attribution).

Everything is recomputed in float64 from the cache and checked against the model's own activations:
Σ_h ΔE_h + b_O against attn_out, and E + ΔE against resid_mid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from interp.analysis.engine import Input, one_prompt
from interp.analysis.specs import Attn, Head, Resid, ResidFinal
from interp.cache import act_name
from interp.transformer import HookedTransformer

__all__ = ["ResidualUpdate", "residual_update"]


@dataclass(frozen=True)
class ResidualUpdate:
    """One attention layer's ΔE at one position, in tokens (see the module docstring)."""

    layer: int
    pos: int
    target: int  # the token attributed to (the model's final top prediction at pos unless given)
    lens: pd.DataFrame  # rows "E" and "E'": top_tokens, top_probs, target_prob, target_logprob, target_rank
    cos: float  # cos(E, E')
    ratio: float  # ‖ΔE‖ / ‖E‖
    parts: pd.DataFrame  # one row per head, then "b_O": part, head, norm, share, dla, promotes
    vectors: np.ndarray  # [part, d_model] float64: each part's ΔE, in the rows' order; they sum to ΔE
    parts_error: float  # max |Σ parts − attn_out| (the model's own ΔE)
    sum_error: float  # max |E + ΔE − resid_mid| (the model's own E')


def _readout(model: HookedTransformer) -> Tensor:
    """W_U [d_model, d_vocab] with ln_final's weight folded in, float64."""
    with model.weights_of(model.ln_final):  # an offloaded ln_final's, fetched
        w = getattr(model.ln_final, "w", None)
        w = None if w is None else w.detach().clone()
    W_U = model.W_U.double()
    return W_U * w.double()[:, None] if w is not None else W_U


@torch.no_grad()
def residual_update(
    model: HookedTransformer, prompt: Input, layer: int, pos: int = -1, target: int | None = None, k: int = 5
) -> ResidualUpdate:
    """E, ΔE = attn_out and E' = resid_mid of `layer` at `pos` (negative counts from the end), in tokens."""
    Head(layer, 0).validate(model)
    tokens, pos = one_prompt(model, prompt, pos, "residual_update reads", "pos")
    names = {
        "E": Resid(layer).hook_name,
        "dE": Attn(layer).hook_name,
        "E'": Resid(layer, stage="mid").hook_name,
        "z": Head(layer, 0).hook_name,
        "final": ResidFinal().at(model).hook_name,
        "scale": act_name("scale"),
    }
    logits, cache = model.run_with_cache(tokens, names_filter=list(names.values()))
    act = {key: cache[name][0, pos].double() for key, name in names.items()}
    if target is None:
        target = int(logits[0, pos].argmax())
    if not 0 <= target < model.cfg.d_vocab:
        raise ValueError(f"target {target} is not a token id (0 to {model.cfg.d_vocab - 1})")
    readout = _readout(model)
    decode = model.tokenizer.decode if model.tokenizer is not None else str

    def lens_row(name: str, resid: Tensor) -> dict:
        logp = model.unembed(model.ln_final(resid.to(model.W_U.dtype))).double().log_softmax(-1)
        top = logp.topk(k)
        return {
            "residual": name,
            "top_tokens": [decode([int(i)]) for i in top.indices],
            "top_probs": top.values.exp().tolist(),
            "target_prob": float(logp[target].exp()),
            "target_logprob": float(logp[target]),
            "target_rank": int((logp > logp[target]).sum()),
        }

    E, dE, E_prime = act["E"], act["dE"], act["E'"]
    attn = model.blocks[layer].attn
    with model.weights_of(model.blocks[layer]):  # an offloaded block's, fetched
        heads = torch.einsum("hd,hdm->hm", act["z"], attn.W_O.double())  # ΔE_h = z_h W_O[h]
        parts = [heads[h] for h in range(heads.shape[0])]
        labels = [f"L{layer}H{h}" for h in range(heads.shape[0])]
        if attn.b_O is not None:
            parts.append(attn.b_O.double())
            labels.append("b_O")
    stack = torch.stack(parts)  # [part, d_model]
    scale = act["scale"].reshape(-1)[0]  # ln_final's scale of the final residual at pos
    direct = model.ln_final.center(stack) / scale @ readout  # [part, d_vocab]
    rows = []
    for i, label in enumerate(labels):
        promoted = direct[i].topk(k).indices
        rows.append(
            {
                "part": label,
                "head": i if label != "b_O" else -1,
                "norm": float(stack[i].norm()),
                "share": float(stack[i] @ dE / dE.norm().clamp_min(1e-30) ** 2),
                "dla": float(direct[i, target]),
                "promotes": [decode([int(t)]) for t in promoted],
            }
        )
    return ResidualUpdate(
        layer=layer,
        pos=pos,
        target=target,
        lens=pd.DataFrame([lens_row("E", E), lens_row("E'", E_prime)]),
        cos=float(E @ E_prime / (E.norm() * E_prime.norm()).clamp_min(1e-30)),
        ratio=float(dE.norm() / E.norm().clamp_min(1e-30)),
        parts=pd.DataFrame(rows),
        vectors=stack.cpu().numpy(),
        parts_error=float((stack.sum(0) - dE).abs().max()),
        sum_error=float((E + dE - E_prime).abs().max()),
    )
