"""Generation and steering vectors.

`generate` re-runs the whole sequence for every new token (no KV cache). That is slower, but it means
any hooks attached around it — `ablate`, `steer`, `model.hooks(...)` — see every position on every step,
exactly as in a single forward.

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

from interp.analysis.edits import add, masked_mean
from interp.analysis.engine import Input, Until, edited, prepare, read_index, reference_runs
from interp.analysis.metrics import upcast
from interp.analysis.specs import ResidPre
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
) -> str | list[str] | Tensor:
    """Continue the prompt; greedy at temperature 0, else sampled (optionally from the top-k), seeded.

    Text in, text out (prompt included); token ids in, ids out ([batch, pos + new]). Prompts of different
    lengths are left-padded so every row's next token is at the last position.
    """
    if max_new_tokens < 0 or temperature < 0:
        raise ValueError(f"max_new_tokens and temperature must be >= 0, got {max_new_tokens}, {temperature}")
    if isinstance(prompt, Tensor):
        base = prepare(model, prompt)
        tokens, mask = base.tokens, base.mask
    else:
        tokens, mask = model.to_tokens(prompt, padding_side="left", return_attention_mask=True)
        mask = None if bool(mask.all()) else mask
    gen = torch.Generator(device=tokens.device).manual_seed(seed) if seed is not None else None
    eos = getattr(model.tokenizer, "eos_token_id", None) if stop_at_eos else None
    done = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    for _ in range(max_new_tokens):
        with torch.no_grad():
            resid = model(tokens, attention_mask=mask, stop_at_layer=model.cfg.n_layers)
            logits = upcast(model.unembed(model.ln_final(resid[:, -1])))
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = logits.topk(top_k, dim=-1).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(logits.softmax(-1), 1, generator=gen)[:, 0]
        if eos is not None:
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
            done |= nxt == eos
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        if mask is not None:
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        if eos is not None and bool(done.all()):
            break
    if isinstance(prompt, Tensor):
        return tokens
    rows = list(tokens) if mask is None else [row[m.bool()] for row, m in zip(tokens, mask, strict=True)]
    texts = [model.tokenizer.decode(row.tolist()) for row in rows]
    return texts[0] if isinstance(prompt, str) else texts


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
