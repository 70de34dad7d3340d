"""`interp demo`: one prompt through the embedded model, told as the residual stream story.

Prints the top predictions, how much each layer's attention and MLP add to the last token's vector
(E' = E + ΔE), the logit lens of the predicted token, and what zero-ablating each layer does to it.
"""

from __future__ import annotations

import argparse

import torch

import interp
from interp.analysis import MLP, Attn, ablate
from interp.embedded import DEFAULT


def main(args: argparse.Namespace | None = None) -> int:
    model_name = getattr(args, "model", None)
    prompt = getattr(args, "prompt", None) or "The capital of France is"
    try:
        model = interp.load(model_name)
    except interp.LoadError as e:
        print(f"error: {e}")
        return 2
    logits, cache = model.run_with_cache(prompt)
    probs = logits[0, -1].softmax(-1)
    top = probs.topk(5)
    print(f"model: {model_name or DEFAULT} ({sum(p.numel() for p in model.parameters()):,} params)")
    print(f"prompt: {prompt!r}  tokens: {model.to_str_tokens(prompt)}")
    print("\nnext-token predictions:")
    for p, i in zip(top.values, top.indices, strict=True):
        print(f"  {model.to_string([int(i)])!r:>14}  {p.item():.3f}")
    answer = int(top.indices[0])

    print("\nresidual stream at the last token: E' = E + ΔE per layer (norms)")
    print(
        f"  {'layer':>5} {'‖resid_pre‖':>12} {'‖ΔE attn‖':>10} {'‖ΔE mlp‖':>10} {'‖resid_post‖':>13}  sum check"
    )
    for layer in range(model.cfg.n_layers):
        pre, attn, mlp = (cache[name, layer][0, -1] for name in ("resid_pre", "attn_out", "mlp_out"))
        post = cache["resid_post", layer][0, -1]
        err = (pre + attn + mlp - post).abs().max().item()
        print(
            f"  {layer:>5} {pre.norm():12.2f} {attn.norm():10.2f} {mlp.norm():10.2f} {post.norm():13.2f}  {err:.1e}"
        )

    print(f"\nlogit lens: probability of {model.to_string([answer])!r} read out after each layer")
    resid, labels = cache.accumulated_resid(apply_ln=True, pos_slice=-1, return_labels=True)
    lens = resid @ model.W_U  # apply_ln at the unembed is ln_final itself, with each layer's own statistics
    for label, row in zip(labels, lens[:, 0].softmax(-1), strict=True):
        rank = int((row > row[answer]).sum())
        print(f"  {label:>10}  p={row[answer].item():.3f}  rank={rank}")

    print(f"\nzero-ablation: probability of {model.to_string([answer])!r} with one component removed")
    for layer in range(model.cfg.n_layers):
        cells = []
        for label, site in (("attn", Attn(layer)), ("mlp", MLP(layer))):
            with ablate(model, site), torch.no_grad():
                p = model(prompt)[0, -1].softmax(-1)[answer].item()
            cells.append(f"{label} {p:.3f}")
        print(f"  layer {layer}: " + "   ".join(cells))
    return 0
