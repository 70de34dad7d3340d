"""Generation and steering vectors.

`generate` is `model.generate`'s loop (`interp.generation`) with greedy defaults and a KV cache: after the
prompt, hooks attached around it — `ablate`, `steer`, `model.hooks(...)` — see only the new position on
each step; `ablate` and `steer` place their edits at absolute positions, so the output is the same as
without the cache (`use_past_kv_cache=False`, which re-runs every position on every step).

Steering (activation addition, Turner et al. 2023): the difference of mean residuals between two prompt
sets at a layer is added, times a coefficient, to resid_pre of that layer at chosen positions (the
`add` edit). Any edit works during generation: `with edited(model, [(site, edit)]): generate(...)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interp import generation
from interp.analysis.ablation import Method, ablate
from interp.analysis.edits import add, masked_mean
from interp.analysis.engine import Input, Until, edited, prepare, read_index, reference_runs
from interp.analysis.specs import ResidPre, Spec
from interp.transformer import HookedTransformer

_UNSET = object()


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
    read_pos: int | Literal["all"] | None = None,
    pos: int | None | object = _UNSET,
) -> Float[Tensor, " d_model"]:
    """mean(resid_pre[layer] | positive) − mean(resid_pre[layer] | negative).

    `read_pos=None` reads each prompt's last real token, an int one position, `"all"` averages over every
    real token. Deprecated: `pos=` (-1 for the last real token, None for all).
    """
    if pos is not _UNSET:
        read_pos = "all" if pos is None else (None if pos == -1 else pos)  # type: ignore[assignment]
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer {layer} out of range; the model has {model.cfg.n_layers} layers")
    return _mean_resid(model, positive, layer, read_pos) - _mean_resid(model, negative, layer, read_pos)


def _mean_resid(model: HookedTransformer, prompts: Input, layer: int, read_pos: int | str | None) -> Tensor:
    p = prepare(model, prompts)
    site = ResidPre(layer)
    (run,) = reference_runs(model, [p], [site.hook_name], Until(layer + 1))
    resid = run.acts[site.hook_name]
    if read_pos == "all":
        return masked_mean(resid, p.mask, 1, per_position=False).flatten()
    return resid[torch.arange(p.batch), read_index(p, read_pos)].mean(0)  # type: ignore[arg-type]


@contextmanager
def steer(
    model: HookedTransformer,
    vector: Float[Tensor, " d_model"],
    layer: int,
    coeff: float = 1.0,
    pos: int | Sequence[int] | None = None,
    *,
    positions: int | Sequence[int] | None = None,
) -> Iterator[HookedTransformer]:
    """Add coeff · vector to resid_pre[layer] at `pos` (None: all) in every forward inside the block.

    `add(vector, coeff)` at `ResidPre(layer, pos)`. Positions that a (shorter) forward does not have are
    skipped, so prompt-position steering also works while `generate` grows the sequence.
    Deprecated: `positions=` for `pos=`.
    """
    pos = pos if positions is None else positions
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer {layer} out of range; the model has {model.cfg.n_layers} layers")
    if vector.shape != (model.cfg.d_model,):
        raise ValueError(f"steering vector must have shape ({model.cfg.d_model},), got {tuple(vector.shape)}")
    with edited(model, [(ResidPre(layer, pos), add(vector, coeff))], strict=False):
        yield model
