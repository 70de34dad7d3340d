"""Generation and steering vectors.

`generate` is `model.generate`'s loop (`interp.generation`) with greedy defaults and a KV cache: after the
prompt, hooks attached around it — `ablate`, `steer`, `model.hooks(...)` — see only the new position on
each step; `ablate` and `steer` place their edits at absolute positions, so the output is the same as
without the cache (`use_past_kv_cache=False`, which re-runs every position on every step).

Steering (activation addition, Turner et al. 2023): the difference of mean residuals between two prompt
sets at a layer is added, times a coefficient, to resid_pre of that layer at chosen positions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from jaxtyping import Float
from torch import Tensor

from interp import generation
from interp.analysis.ablation import Method, ablate
from interp.analysis.runner import Input, prepare
from interp.analysis.specs import Spec
from interp.hooks import HookPoint
from interp.layers.sequence_info import with_cached_positions
from interp.transformer import HookedTransformer


def generate(
    model: HookedTransformer,
    prompt: Input,
    max_new_tokens: int = 20,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int | None = None,
    stop_at_eos: bool = False,
    use_past_kv_cache: bool = True,
) -> str | list[str] | Tensor:
    """Continue the prompt; greedy at temperature 0, else sampled (optionally from the top-k), seeded.

    Text in, text out (prompt and BOS included); token ids in, ids out ([batch, pos + new]). Prompts of
    different lengths are left-padded. The loop is `model.generate`'s (`interp.generation`, which says
    what hooks see under the KV cache), with greedy defaults.
    """
    return generation.generate(
        model, prompt, max_new_tokens, stop_at_eos, temperature=temperature, top_k=top_k, seed=seed,
        use_past_kv_cache=use_past_kv_cache, verbose=False, strip_bos=False,
    )  # fmt: skip


def generate_ablated(
    model: HookedTransformer,
    prompt: str,
    sites: Sequence[Spec],
    max_new_tokens: int = 20,
    method: Method = "zero",
    reference: Sequence[str] | None = None,
) -> str:
    """Greedy continuation (prompt included) with `sites` ablated on every step.

    Zero ablation is `ablate` around `generate`. Mean and resample ablation replace activations by those of
    reference prompts of the prompt's length; here every step re-runs the ablation with each reference
    extended by the tokens generated so far, so a new position gets the references' activations on the same
    continuation. (Inside a plain `ablate`, resample would fail once the run outgrows the references, and
    mean would fill the new positions with the references' mean over all their positions.)
    """
    if method == "zero":
        with ablate(model, sites):
            return generate(model, prompt, max_new_tokens)  # type: ignore[return-value]
    if not reference:
        raise ValueError(f"{method} ablation needs reference prompts")
    tokens = model.to_tokens(prompt)
    ref = model.to_tokens(list(reference))
    if ref.shape[1] != tokens.shape[1]:
        raise ValueError(
            f"the reference prompts need the prompt's {tokens.shape[1]} tokens, not {ref.shape[1]}"
        )
    for _ in range(max_new_tokens):
        new = tokens[:, ref.shape[1] :].expand(ref.shape[0], -1)
        with ablate(model, sites, method, torch.cat([ref, new], dim=1)), torch.no_grad():
            resid = model(tokens, stop_at_layer=model.cfg.n_layers)
            logits = model.unembed(model.ln_final(resid))
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return model.to_string(tokens[0])  # type: ignore[return-value]


def steering_vector(
    model: HookedTransformer,
    positive: Input,
    negative: Input,
    layer: int,
    *,
    pos: int | None = -1,
) -> Float[Tensor, " d_model"]:
    """mean(resid_pre[layer] | positive) − mean(resid_pre[layer] | negative).

    `pos=-1` takes each prompt's last real token; `pos=None` averages over all real tokens.
    """
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer {layer} out of range; the model has {model.cfg.n_layers} layers")
    return _mean_resid(model, positive, layer, pos) - _mean_resid(model, negative, layer, pos)


def _mean_resid(model: HookedTransformer, prompts: Input, layer: int, pos: int | None) -> Tensor:
    p = prepare(model, prompts)
    name = f"blocks.{layer}.hook_resid_pre"
    _, cache = model.run_with_cache(
        p.tokens, names_filter=name, attention_mask=p.mask, stop_at_layer=layer + 1
    )
    resid = cache[name]
    real = torch.ones_like(p.tokens, dtype=torch.bool) if p.mask is None else p.mask.bool()
    if pos is None:
        return (resid * real[..., None]).sum((0, 1)) / real.sum()
    if pos == -1:
        return resid[torch.arange(p.batch), p.last_pos()].mean(0)
    return resid[:, pos].mean(0)


@contextmanager
def steer(
    model: HookedTransformer,
    vector: Float[Tensor, " d_model"],
    layer: int,
    coeff: float = 1.0,
    positions: int | Sequence[int] | slice | None = None,
) -> Iterator[HookedTransformer]:
    """Add coeff · vector to resid_pre[layer] at `positions` (None: all) in every forward inside the block.

    Positions that a (shorter) forward does not have are skipped, so prompt-position steering also works
    while `generate` grows the sequence.
    """
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer {layer} out of range; the model has {model.cfg.n_layers} layers")
    if vector.shape != (model.cfg.d_model,):
        raise ValueError(f"steering vector must have shape ({model.cfg.d_model},), got {tuple(vector.shape)}")
    delta = coeff * vector.detach()

    def add(resid: Tensor, hook: HookPoint) -> Tensor:
        new = resid.shape[1]
        resid, start = with_cached_positions(resid)  # absolute positions, also under a KV cache
        n_pos = resid.shape[1]
        if positions is None:
            where: slice | list[int] = slice(None)
        elif isinstance(positions, slice):
            where = positions
        else:
            ps = [positions] if isinstance(positions, int) else list(positions)
            where = [p for p in ps if -n_pos <= p < n_pos]
        resid[:, where] += delta.to(resid)
        return resid.narrow(1, start, new)

    with model.hooks([(f"blocks.{layer}.hook_resid_pre", add)]):
        yield model
