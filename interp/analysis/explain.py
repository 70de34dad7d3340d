"""One attention head at one destination token, step by step, recomputed from the model's own activations:

    1. q·k for every source          2. ÷√d_head, masked, softmax → weights
    3. Σ_s w_s v_s = z               4. ΔE_head = z W_O[h]
    5. E' = E + ΔE, with ΔE the whole layer's attn_out (Σ_h ΔE_h + b_O) and E the destination's resid_pre

Each step is done here in float64 from the cached q, k, v, and checked against what the model itself
computed (its pattern, its z, its resid_mid), so the explanation cannot drift from the forward it explains.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from interp.analysis.engine import Input, one_prompt
from interp.analysis.specs import Attn, Head, Resid
from interp.transformer import HookedTransformer


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


@torch.no_grad()
def explain_head(
    model: HookedTransformer, prompt: Input, layer: int, head: int, dest: int = -1, k: int = 5
) -> HeadExplanation:
    """Explain head `head` of `layer` at position `dest` (negative counts from the end) of one prompt."""
    Head(layer, head).validate(model)
    tokens, dest = one_prompt(model, prompt, dest, "explain_head explains", "dest")
    attn = model.blocks[layer].attn
    rotary = Head(layer, 0, part="rot_q").hook_name in model.hook_dict
    q_part, k_part = ("rot_q", "rot_k") if rotary else ("q", "k")
    heads = {
        p: Head(layer, 0, part=p).hook_name for p in (q_part, k_part, "v", "attn_scores", "pattern", "z")
    }
    resid = {
        "resid_pre": Resid(layer).hook_name,
        "attn_out": Attn(layer).hook_name,
        "resid_mid": Resid(layer, stage="mid").hook_name,
    }
    _, cache = model.run_with_cache(tokens, names_filter=[*heads.values(), *resid.values()])
    act = {p: cache[name][0].double() for p, name in {**heads, **resid}.items()}
    kv = head // (attn.n_heads // attn.n_kv_heads)  # grouped-query heads share a key/value head
    q = act[q_part][dest, head]  # [d_head]
    keys, values = act[k_part][:, kv], act["v"][:, kv]  # [src, d_head]
    dots = keys @ q  # step 1: q·k for every source
    scaled = dots * attn.scale  # step 2: ÷√d_head (the model's own scale), masked, softmax
    masked = act["attn_scores"][head, dest].isinf()
    weights = scaled.masked_fill(masked, float("-inf")).softmax(-1)
    weighted = weights[:, None] * values  # step 3: the weighted values
    z = weighted.sum(0)
    with model.weights_of(model.blocks[layer]):  # an offloaded block's, fetched
        delta_head = z @ attn.W_O[head].double()  # step 4: the head's ΔE
    e, delta, mid = act["resid_pre"][dest], act["attn_out"][dest], act["resid_mid"][dest]
    e_prime = e + delta  # step 5: E' = E + ΔE
    logits = delta_head.float() @ model.W_U
    promoted = [model.tokenizer.decode([i]) for i in logits.topk(k).indices.tolist()]
    table = pd.DataFrame(
        {
            "pos": range(tokens.shape[1]),
            "token": model.to_str_tokens(tokens[0]),
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
