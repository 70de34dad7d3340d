"""`generate`: continue prompts token by token, with TransformerLens's signature and a per-call KV cache.

`model.generate(...)` and `interp.analysis.generate(...)` both run this one loop.

What a hook sees. Without the cache (`use_past_kv_cache=False`) every step re-runs the whole sequence, so
a hook sees every position on every step, as in a single forward. With the cache (the default, as in
TransformerLens) the first forward runs the prompt and each later forward runs only the newest token: hooks
fire once per new position, on activations [batch, 1, ...]. `hook_k` / `hook_v` see the new keys and values
only; `hook_attn_scores` and `hook_pattern` are [batch, head, 1, key_pos] over every position so far. Both
ways, `ln_final` and the unembedding run on the last position only.

Inside a hook, `interp.layers.sequence_info.cached_positions()` is the absolute position of the activation's
first row. interp's own edits (`ablate`, `steer`) use it, so an edit at position 3 hits position 3 in both
modes and greedy output is the same with and without the cache. An edit at a negative position (counted
from the end) differs: without the cache, position -1 is re-edited as the sequence grows; with it each
position is edited once, while it is the newest.

The KV cache is an `interp.kv_cache.KVCache` made for each call and dropped at its end: the model holds no
generation state, so threads generating on one model never share a cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp import tokens as tok_utils
from interp.kv_cache import KVCache

if TYPE_CHECKING:
    from interp.transformer import HookedTransformer

Input = str | Sequence[str] | Tensor
GenReturn = Literal["input", "str", "tokens"]


def generate(
    model: HookedTransformer,
    input: Input = "",
    max_new_tokens: int = 10,
    stop_at_eos: bool = True,
    eos_token_id: int | Sequence[int] | None = None,
    do_sample: bool = True,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    freq_penalty: float = 0.0,
    use_past_kv_cache: bool = True,
    prepend_bos: bool | None = None,
    padding_side: Literal["left"] | None = None,
    return_type: GenReturn = "input",
    verbose: bool = True,
    *,
    attention_mask: Tensor | None = None,
    seed: int | None = None,
    strip_bos: bool = True,
) -> str | list[str] | Tensor:
    """Sample up to `max_new_tokens` tokens after each prompt (TransformerLens's `generate`).

    - `input`: a text, a list of texts (left-padded, so every row's next token is at the last position),
      or token ids [batch, pos] (with `attention_mask` if they are left-padded).
    - Greedy when `do_sample=False` or `temperature=0`; else sampled from softmax(logits / temperature),
      minus `freq_penalty` times each token's count so far, restricted to the `top_k` tokens or else to the
      smallest set holding `top_p` of the probability (TransformerLens's `sample_logits`, draw for draw).
      `seed` draws from a private generator instead of torch's global one.
    - `stop_at_eos`: a row stops at `eos_token_id` (an id or several; default the tokenizer's EOS) and is
      then padded with EOS; generation ends when every row has stopped.
    - `return_type`: "tokens" (ids [batch, pos + new], prompt and padding included), "str" (text, the
      prompt included, without padding and, unless `strip_bos=False`, without a leading BOS, as
      TransformerLens drops the BOS it prepends), or "input": "str" for text input, "tokens" for ids. One
      text (or one row of ids) gives one string.
    - `verbose` shows a progress bar.

    See the module docstring for what hooks see with and without the KV cache.
    """
    _check_options(max_new_tokens, temperature, top_k, top_p, freq_penalty, return_type, padding_side)
    tokens, mask = _prompt(model, input, prepend_bos, attention_mask)
    if return_type == "input":
        return_type = "tokens" if isinstance(input, Tensor) else "str"
    if return_type == "str":
        tok_utils.require(model.tokenizer)  # before generating, not after
    if tokens.shape[1] + max_new_tokens > model.cfg.n_ctx:
        raise ValueError(
            f"the prompt has {tokens.shape[1]} tokens and max_new_tokens={max_new_tokens}: more than the "
            f"model's context n_ctx={model.cfg.n_ctx}"
        )
    stops = _stop_tokens(model, eos_token_id) if stop_at_eos else None
    gen = None if seed is None else torch.Generator(device=tokens.device).manual_seed(seed)
    greedy = not do_sample or temperature == 0
    cache = KVCache(model.cfg.n_layers) if use_past_kv_cache else None
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    step, step_mask = tokens, mask  # what the next forward runs: everything, or only the new position
    with torch.no_grad():
        for _ in tqdm(range(max_new_tokens), disable=not verbose, desc="generate"):
            logits = _last_logits(model, step, step_mask, cache)
            if greedy:
                nxt = logits.argmax(-1)
            else:
                nxt = sample_logits(logits, top_k, top_p, temperature, freq_penalty, tokens, gen)
            if stops is not None:  # rows that have stopped keep emitting EOS, as in TransformerLens
                nxt = torch.where(finished, stops[0], nxt)
                finished |= torch.isin(nxt, stops)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            step, step_mask = (nxt[:, None], None) if cache is not None else (tokens, mask)
            if stops is not None and bool(finished.all()):
                break
    if return_type == "tokens":
        return tokens
    texts = _decode(model, tokens, mask, strip_bos)
    return texts[0] if isinstance(input, str) or (isinstance(input, Tensor) and len(texts) == 1) else texts


def sample_logits(
    logits: Float[Tensor, "batch d_vocab"],
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    freq_penalty: float = 0.0,
    tokens: Int[Tensor, "batch pos"] | None = None,
    generator: torch.Generator | None = None,
) -> Int[Tensor, " batch"]:
    """One sampled token per row, as TransformerLens's `sample_logits` (top_k wins over top_p)."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = (logits if logits.dtype == torch.float64 else logits.float()) / temperature
    if freq_penalty > 0:
        if tokens is None:
            raise ValueError("freq_penalty needs the tokens generated so far (tokens=...)")
        counts = torch.stack([torch.bincount(row, minlength=logits.shape[-1]) for row in tokens])
        logits = logits - freq_penalty * counts[:, : logits.shape[-1]]
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    elif top_p is not None:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        beyond = sorted_logits.softmax(-1).cumsum(-1) > top_p
        beyond[..., 1:] = beyond[..., :-1].clone()  # keep the token that crosses top_p
        beyond[..., 0] = False
        logits = logits.masked_fill(beyond.scatter(-1, order, beyond), float("-inf"))
    probs = torch.distributions.Categorical(logits=logits).probs
    # Categorical.sample() is this same call on the global generator; a private one keeps seeds local.
    return torch.multinomial(probs, 1, True, generator=generator)[:, 0]


# ---- steps ---------------------------------------------------------------------------------------------


def _last_logits(
    model: HookedTransformer, step: Tensor, mask: Tensor | None, cache: KVCache | None
) -> Tensor:
    """Logits [batch, d_vocab] at the last position; the unembedding runs on that position only."""
    resid = model(step, attention_mask=mask, stop_at_layer=model.cfg.n_layers, past_kv_cache=cache)
    logits = model.unembed(model.ln_final(resid[:, -1:]))[:, 0]
    return logits if logits.dtype == torch.float64 else logits.float()


def _prompt(
    model: HookedTransformer, input: Input, prepend_bos: bool | None, attention_mask: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Token ids [batch, pos] and the padding mask (None when nothing is padded)."""
    if isinstance(input, Tensor):
        if input.is_floating_point():
            raise ValueError(f"generate takes text or integer token ids, got a {input.dtype} tensor")
        tokens = (input[None] if input.ndim == 1 else input).to(model.W_E.device).long()
        if tokens.ndim != 2 or tokens.shape[1] == 0:
            raise ValueError(f"token input must be [batch, pos] with pos >= 1, got {tuple(input.shape)}")
        mask = attention_mask
        if mask is not None:
            mask = mask[None] if mask.ndim == 1 else mask
            if mask.shape != tokens.shape:
                raise ValueError(f"attention_mask shape {tuple(mask.shape)} != tokens {tuple(tokens.shape)}")
            mask = mask.to(tokens.device).long()
    else:
        if attention_mask is not None:
            raise ValueError("attention_mask goes with token ids; text input is padded (left) by generate")
        tokens, mask = model.to_tokens(
            input, prepend_bos=prepend_bos, padding_side="left", return_attention_mask=True
        )
    if mask is not None and bool(mask.all()):
        mask = None
    if mask is not None and not bool(mask[:, -1].all()):
        raise ValueError(
            "generate needs left padding (every row's last position a real token), so that each row's next "
            "token follows its last real one; this attention_mask pads on the right"
        )
    return tokens, mask


def _stop_tokens(model: HookedTransformer, eos_token_id: int | Sequence[int] | None) -> Tensor:
    if eos_token_id is None:
        eos_token_id = getattr(model.tokenizer, "eos_token_id", None)
        if eos_token_id is None:
            raise ValueError(
                "stop_at_eos=True needs an end-of-sequence token: this model's tokenizer has none; "
                "pass eos_token_id=... or stop_at_eos=False"
            )
    ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
    if not ids or any(not 0 <= int(i) < model.cfg.d_vocab for i in ids):
        raise ValueError(f"eos_token_id must be token ids in [0, {model.cfg.d_vocab}), got {eos_token_id}")
    return torch.tensor(ids, dtype=torch.long, device=model.W_E.device)


def _decode(model: HookedTransformer, tokens: Tensor, mask: Tensor | None, strip_bos: bool) -> list[str]:
    tok = tok_utils.require(model.tokenizer)
    rows = list(tokens) if mask is None else [row[m.bool()] for row, m in zip(tokens, mask, strict=True)]
    bos = getattr(tok, "bos_token_id", None) if strip_bos else None
    return [tok.decode(row[int(bos is not None and int(row[0]) == bos) :].tolist()) for row in rows]


def _check_options(
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    freq_penalty: float,
    return_type: Any,
    padding_side: Any,
) -> None:
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1] or be None, got {top_p}")
    if freq_penalty < 0:
        raise ValueError(f"freq_penalty must be >= 0, got {freq_penalty}")
    if return_type not in ("input", "str", "tokens"):
        raise ValueError(f"return_type must be 'input', 'str' or 'tokens', got {return_type!r}")
    if padding_side not in (None, "left"):
        raise ValueError(
            f"padding_side={padding_side!r}: generate pads prompts on the left, so that every row's next "
            "token is at the last position; pass None or 'left'"
        )
