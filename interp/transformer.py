"""`HookedTransformer`: a decoder-only transformer whose every activation is a named hook point.

The forward pass is the residual stream story: E = embed (+ positions); each block adds attention's ΔE
then the MLP's ΔE; the final norm and W_U read the result out as logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from interp import generation, storage
from interp import tokens as tok_utils
from interp.cache import ActivationCache, cache_hooks, deferred_results
from interp.compat.config_view import TLConfigView, as_model_config
from interp.compat.model import TLModelMixin
from interp.compat.run import run_with_cache_tl
from interp.config import ModelConfig
from interp.hooks import HookedRootModule, HookPoint, HookRangeError, HookSpec, NameFilter
from interp.kv_cache import KVCache
from interp.layers.block import make_block
from interp.layers.embed import PosEmbed, make_embed, make_unembed
from interp.layers.norms import make_norm
from interp.layers.sequence_info import SequenceInfo, running
from interp.sae.host import SAEHost

Input = str | Sequence[str] | Tensor
ReturnType = Literal["logits", "loss", "both"] | None
RETURN_TYPES = ("logits", "loss", "both", None)


def _resident(module: nn.Module) -> AbstractContextManager[Any]:
    """`weights_of` of a model whose weights all sit in memory: nothing to fetch."""
    return nullcontext()


class HookedTransformer(SAEHost, TLModelMixin, HookedRootModule):
    """`model.cfg` is a read-only view with TransformerLens's names too; `model.config` is the ModelConfig."""

    def __init__(
        self,
        cfg: ModelConfig | TLConfigView,
        tokenizer: Any = None,
        default_prepend_bos: bool = True,
        init: bool = True,
    ) -> None:
        super().__init__()
        cfg = as_model_config(cfg)
        self._init_compat()
        self.config = cfg
        self.tokenizer = tokenizer
        self.default_prepend_bos = default_prepend_bos  # BOS policy when to_tokens is not told
        self.embed = make_embed(cfg)
        self.hook_embed = HookPoint()
        # Learned absolute positions are added to the residual stream; RoPE models rotate q and k instead.
        self.pos_embed = PosEmbed(cfg) if cfg.positional == "learned" else None
        self.hook_pos_embed = HookPoint() if cfg.positional == "learned" else None
        self.blocks = nn.ModuleList(make_block(cfg, layer) for layer in range(cfg.n_layers))
        self.ln_final = make_norm(cfg) if cfg.norms.final else nn.Identity()  # OPT-350m's post-LN: none
        self.unembed = make_unembed(cfg, self.embed)
        # A placed model (interp.loading.placement) sets a lock here: its offloaded weights are swapped into
        # the modules during a forward, so it runs one forward at a time.
        self.forward_lock: AbstractContextManager[Any] = nullcontext()
        self.device_map: dict[str, str] | None = None  # set by a placed load: unit -> device (or "disk")
        # `with model.weights_of(module):` makes the module's weights real tensors for code outside a forward
        # (an offloaded block holds meta tensors between forwards); a placed load sets accelerate's here.
        self.weights_of: Callable[[nn.Module], AbstractContextManager[Any]] = _resident
        if init:  # loaders pass init=False and copy the checkpoint in instead
            self.init_weights()
        self.setup_hooks()
        # When each hook point runs: -1 before block 0 (embeddings), l inside block l, n_layers after.
        self._hook_stage = {
            name: point.layer() if name.startswith("blocks.") else (-1 if "embed" in name else cfg.n_layers)
            for name, point in self.hook_dict.items()
        }

    # ---- forward -------------------------------------------------------------------------------------------
    def forward(
        self,
        input: Input,
        *,
        attention_mask: Tensor | None = None,
        return_type: ReturnType = "logits",
        start_at_layer: int | None = None,
        stop_at_layer: int | None = None,
        prepend_bos: bool | None = None,
        past_kv_cache: KVCache | None = None,
        loss_per_token: bool = False,
        padding_side: tok_utils.PaddingSide | None = None,
    ) -> Any:
        """Logits [batch, pos, d_vocab] (or loss, both, or None) for text, a list of texts, or token ids.

        With `start_at_layer`, `input` is the residual stream entering that block ([batch, pos, d_model]);
        with `stop_at_layer`, the residual stream entering that block is returned instead of logits.
        With `past_kv_cache`, `input` holds only the positions after the cached ones (and `attention_mask`
        covers only those); their keys and values are appended to the cache (see `interp.kv_cache`).
        `loss_per_token` returns the loss [batch, pos - 1] instead of its mean (TL's name).
        """
        if return_type not in RETURN_TYPES:
            raise ValueError(f"return_type={return_type!r}; allowed: 'logits', 'loss', 'both' or None")
        start, stop = self._layer_range(start_at_layer, stop_at_layer)
        if start_at_layer is not None or stop_at_layer is not None:
            self._check_hooks_fire(start_at_layer, stop_at_layer)
        if start_at_layer is None:
            tokens, attention_mask = self._tokens_and_mask(input, attention_mask, prepend_bos, padding_side)
            batch, n_pos = tokens.shape
        else:
            tokens, resid = None, input
            if not isinstance(resid, Tensor) or resid.ndim != 3 or resid.shape[-1] != self.config.d_model:
                raise ValueError(
                    f"with start_at_layer, input must be a residual [batch, pos, {self.config.d_model}]"
                )
            batch, n_pos = resid.shape[:2]
            self._check_length(n_pos)
        if past_kv_cache is not None:
            self._check_length(past_kv_cache.length + n_pos)
        seq = SequenceInfo.build(batch, n_pos, attention_mask, self.W_E.device, past_kv_cache)
        # running: hooks can ask which absolute positions they see (sequence_info.cached_positions)
        with self.forward_lock, running(seq):
            if tokens is not None:
                resid = self.embed_tokens(tokens, seq)
            for block in self.blocks[start:stop]:
                resid = block(resid, seq)  # a placed block moves resid (and seq) to its own device
            if stop_at_layer is not None:
                return resid
            logits = self.unembed(self.ln_final(resid))
        if tokens is not None and logits.device != tokens.device:  # placed: back where the input started
            logits = logits.to(tokens.device)
        if return_type == "logits":
            return logits
        if return_type is None:
            return None
        if tokens is None:
            raise ValueError("a loss needs tokens; it cannot be computed with start_at_layer")
        loss = lm_loss(logits, tokens, attention_mask, per_token=loss_per_token)
        return loss if return_type == "loss" else (logits, loss)

    def embed_tokens(
        self, tokens: Int[Tensor, "batch pos"], seq: SequenceInfo
    ) -> Float[Tensor, "batch pos d_model"]:
        """resid_pre of block 0: the token embedding E, plus learned positions where the model has them."""
        resid = self.hook_embed(self.embed(tokens))
        if self.pos_embed is not None:
            # .to: a placed pos_embed may run on another device than the token embedding
            resid = resid + self.hook_pos_embed(self.pos_embed(seq.positions).to(resid.device))
        return resid

    def loss(self, input: Input, per_token: bool = False, attention_mask: Tensor | None = None) -> Tensor:
        """Mean next-token cross-entropy (or [batch, pos-1] per token), ignoring padding."""
        tokens, attention_mask = self._tokens_and_mask(input, attention_mask, None)
        logits = self(tokens, attention_mask=attention_mask)
        return lm_loss(logits, tokens, attention_mask, per_token=per_token)

    def loss_fn(
        self, logits: Tensor, tokens: Tensor, attention_mask: Tensor | None = None, per_token: bool = False
    ) -> Tensor:
        """TransformerLens's name: next-token cross-entropy of given `logits` against `tokens`."""
        if logits.ndim != 3 or tokens.shape != logits.shape[:2]:
            raise ValueError(
                f"loss_fn needs logits [batch, pos, d_vocab] and tokens [batch, pos]; got {tuple(logits.shape)} "
                f"and {tuple(tokens.shape)}"
            )
        return lm_loss(logits, tokens.to(logits.device), attention_mask, per_token=per_token)

    # ---- hooks and caching ---------------------------------------------------------------------------------
    def run_with_hooks(
        self,
        input: Input,
        fwd_hooks: Sequence[HookSpec] = (),
        bwd_hooks: Sequence[HookSpec] = (),
        backward_metric: Callable[[Tensor], Tensor] | None = None,
        reset_hooks_end: bool = True,
        clear_contexts: bool = False,
        **forward_kwargs: Any,
    ) -> Any:
        """Run the forward with hooks attached for this call only, in this thread / task only.

        Backward hooks fire on `backward_metric(output).backward()`, run inside the same scope; after the
        call returns no hook remains, so a later backward does not reach them.

        TransformerLens arguments: `reset_hooks_end=False` leaves the hooks on the model as persistent,
        MODEL-WIDE hooks (every thread sees them until `reset_hooks()`; a later backward reaches them).
        `clear_contexts=True` also empties the model-wide `hook.ctx` dicts at the end; a scoped run's
        contexts always end with the run.
        """
        if not reset_hooks_end:
            plan = [
                (self._points(sel), fn, d)
                for d, hs in (("fwd", fwd_hooks), ("bwd", bwd_hooks))
                for sel, fn in hs
            ]
            for _, fn, _ in plan:
                if not callable(fn):
                    raise TypeError(f"hook must be callable fn(activation, hook), got {fn!r}")
            for points, fn, d in plan:
                for point in points:
                    point.add_hook(fn, dir=d)
            out = self(input, **forward_kwargs)
            if backward_metric is not None:
                backward_metric(out).backward()
            return out
        if bwd_hooks and backward_metric is None:
            raise ValueError(
                "bwd_hooks need backward_metric (output -> scalar) to backpropagate inside the call; "
                "or use `with model.hooks(bwd_hooks=...)` and call backward inside the block"
            )
        try:
            return self._run_scoped(input, fwd_hooks, bwd_hooks, backward_metric, forward_kwargs)
        finally:
            if clear_contexts:
                self.clear_contexts()

    def _run_scoped(
        self,
        input: Input,
        fwd_hooks: Sequence[HookSpec],
        bwd_hooks: Sequence[HookSpec],
        backward_metric: Callable[[Tensor], Tensor] | None,
        forward_kwargs: dict[str, Any],
    ) -> Any:
        with self.hooks(fwd_hooks, bwd_hooks):
            out = self(input, **forward_kwargs)
            if backward_metric is not None:
                backward_metric(out).backward()
        return out

    def run_with_cache(
        self,
        input: Input,
        names_filter: NameFilter = None,
        device: torch.device | str | None = None,
        **forward_kwargs: Any,
    ) -> tuple[Any, ActivationCache]:
        """Forward once, keeping the activations selected by `names_filter` (default: all).

        Per-head results (`hook_result`) that no other hook needs are derived from z on first access.
        With `start_at_layer` / `stop_at_layer`, a None or predicate filter keeps only the points the run
        reaches, and an explicitly named point outside the range raises `HookRangeError`.
        TransformerLens's `remove_batch_dim`, `pos_slice` and `incl_bwd` are accepted (interp.compat.run);
        the default skips TL's per-head input copies (`hook_q_input`, ...) unless their switch is on.
        """
        tl_args = {
            k: forward_kwargs.pop(k)
            for k in ("remove_batch_dim", "pos_slice", "incl_bwd")
            if k in forward_kwargs
        }
        if tl_args:
            return run_with_cache_tl(self, input, names_filter, device, tl_args, forward_kwargs)
        start_at_layer = forward_kwargs.get("start_at_layer")
        stop_at_layer = forward_kwargs.get("stop_at_layer")
        names = self.resolve_hook_names(names_filter)
        if names_filter is None:
            names = self.default_cache_names(names)
        if start_at_layer is not None or stop_at_layer is not None:
            self._layer_range(start_at_layer, stop_at_layer)
            if names_filter is None or callable(names_filter):
                names = [n for n in names if self._fires(n, start_at_layer, stop_at_layer)]
            else:
                self._raise_unreached(names, start_at_layer, stop_at_layer)
        deferred = deferred_results(self, names)
        attach = [n for n in names if n not in deferred]
        attach += [z for z in deferred.values() if z not in attach]
        store: dict[str, Tensor] = {}
        with self.hooks(cache_hooks(attach, store, device)), torch.no_grad():
            out = self(input, **forward_kwargs)
        return out, ActivationCache(store, self, keys=names, deferred=deferred)

    # ---- generation ----------------------------------------------------------------------------------------
    # TransformerLens's `generate` with a per-call KV cache: the function itself, so help() shows its
    # signature and docstring, and `model.generate(...)` is `interp.generation.generate(model, ...)`.
    generate = generation.generate

    # ---- tokens --------------------------------------------------------------------------------------------
    def to_tokens(
        self,
        input: str | Sequence[str],
        prepend_bos: bool | None = None,
        padding_side: tok_utils.PaddingSide = "right",
        return_attention_mask: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Token ids [batch, pos] on the model's device; prompts of different lengths are padded."""
        bos = self.default_prepend_bos if prepend_bos is None else prepend_bos
        tokens, mask = tok_utils.encode(self.tokenizer, input, bos, padding_side)
        tokens, mask = tokens.to(self.W_E.device), mask.to(self.W_E.device)
        return (tokens, mask) if return_attention_mask else tokens

    def to_string(self, tokens: Tensor | Sequence[int]) -> str | list[str]:
        tok = tok_utils.require(self.tokenizer)
        t = torch.as_tensor(tokens)
        if t.ndim == 2:
            return [tok.decode(row.tolist()) for row in t]
        return tok.decode(t.tolist())

    def to_single_token(self, text: str) -> int:
        ids = tok_utils.require(self.tokenizer).encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ValueError(f"{text!r} is {len(ids)} tokens ({ids}); expected exactly one")
        return ids[0]

    # ---- weights -------------------------------------------------------------------------------------------
    @property
    def W_E(self) -> Tensor:
        with self.weights_of(self.embed):
            return self.embed.W_E

    @property
    def W_U(self) -> Tensor:
        with self.weights_of(self.unembed), self.weights_of(self.embed):  # tied: W_U is W_E.T
            return self.unembed.W_U

    @property
    def W_pos(self) -> Tensor | None:
        return None if self.pos_embed is None else self.pos_embed.W_pos

    def init_weights(self, std: float = 0.02, seed: int | None = None) -> None:
        """GPT-2 initialisation: N(0, std) matrices, output projections scaled by 1/sqrt(2 n_layers)."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        out_std = std / (2 * self.config.n_layers) ** 0.5
        with torch.no_grad():
            for name, p in self.named_parameters():
                if p.ndim == 1:
                    continue  # norms keep w = 1 / b = 0 and biases stay 0 from construction
                s = out_std if name.endswith(("W_O", "W_out")) else std
                p.copy_(torch.randn(p.shape, generator=gen) * s)

    def save(self, path: str | Path) -> Path:
        """Write safetensors weights, the config and the tokenizer; `interp.load(path)` round-trips it."""
        return storage.save(self, path)

    # ---- input checks --------------------------------------------------------------------------------------
    def _tokens_and_mask(
        self,
        input: Input,
        attention_mask: Tensor | None,
        prepend_bos: bool | None,
        padding_side: tok_utils.PaddingSide | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        if isinstance(input, str) or (isinstance(input, Sequence) and not isinstance(input, Tensor)):
            side = padding_side or "right"
            tokens, mask = self.to_tokens(input, prepend_bos, side, return_attention_mask=True)
            attention_mask = mask if attention_mask is None else attention_mask
        elif isinstance(input, Tensor):
            tokens = input[None] if input.ndim == 1 else input
            if tokens.ndim != 2 or tokens.dtype not in (torch.long, torch.int, torch.int32):
                raise ValueError(
                    f"token input must be an integer tensor [batch, pos], got {tuple(input.shape)} {input.dtype}"
                )
            tokens = tokens.to(self.W_E.device)
        else:
            raise TypeError(f"input must be a string, a list of strings or a token tensor, got {type(input)}")
        if tokens.numel() == 0:
            raise ValueError(f"empty input: got token ids of shape {tuple(tokens.shape)}")
        self._check_length(tokens.shape[1])
        if tokens.max() >= self.config.d_vocab or tokens.min() < 0:
            raise ValueError(
                f"token ids must lie in [0, {self.config.d_vocab}); got {int(tokens.min())}..{int(tokens.max())}"
            )
        if attention_mask is not None and attention_mask.shape != tokens.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} != tokens {tuple(tokens.shape)}"
            )
        return tokens, attention_mask

    def _check_length(self, n_pos: int) -> None:
        if n_pos > self.config.n_ctx:
            raise ValueError(f"input has {n_pos} tokens but the model's context n_ctx is {self.config.n_ctx}")
        if n_pos == 0:
            raise ValueError("empty input: zero positions")

    def _layer_range(self, start_at_layer: int | None, stop_at_layer: int | None) -> tuple[int, int]:
        """The blocks a run executes, [start, stop); start after stop is an error, not an empty run."""
        start = self._layer_index(start_at_layer, "start_at_layer", default=0)
        stop = self._layer_index(stop_at_layer, "stop_at_layer", default=self.cfg.n_layers)
        if start > stop:
            raise ValueError(
                f"start_at_layer={start_at_layer} is after stop_at_layer={stop_at_layer} (blocks {start} and "
                f"{stop}); a run executes blocks [start, stop), so start must be <= stop"
            )
        return start, stop

    def _fires(self, name: str, start_at_layer: int | None, stop_at_layer: int | None) -> bool:
        """Whether the hook point `name` runs in a forward with these start/stop layers."""
        lo = -1 if start_at_layer is None else self._layer_index(start_at_layer, "start_at_layer", 0)
        hi = self.cfg.n_layers + 1 if stop_at_layer is None else self._layer_index(stop_at_layer, "", 0)
        return lo <= self._hook_stage[name] < hi

    def _raise_unreached(
        self, names: Sequence[str], start_at_layer: int | None, stop_at_layer: int | None
    ) -> None:
        missed = [n for n in names if not self._fires(n, start_at_layer, stop_at_layer)]
        if missed:
            raise HookRangeError(
                f"hook point(s) {', '.join(missed)} never run with start_at_layer={start_at_layer}, "
                f"stop_at_layer={stop_at_layer}, so a hook named for them would silently never fire; "
                f"name only points in the range, or select with a filter function, which keeps only those"
            )

    def _check_hooks_fire(self, start_at_layer: int | None, stop_at_layer: int | None) -> None:
        """Explicitly named scoped hooks must fire in this run (filters may select what does not run)."""
        self._raise_unreached([p.name for p in self.explicit_hook_points()], start_at_layer, stop_at_layer)

    def _layer_index(self, value: int | None, what: str, default: int) -> int:
        if value is None:
            return default
        n = self.config.n_layers
        if not -n <= value <= n:
            raise ValueError(f"{what}={value} out of range for a {n}-layer model")
        return value % (n + 1) if value >= 0 else value + n


def lm_loss(
    logits: Float[Tensor, "batch pos d_vocab"],
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Tensor | None = None,
    per_token: bool = False,
) -> Tensor:
    """Next-token cross-entropy; positions whose target is padding are excluded from the mean."""
    if tokens.shape[1] < 2:
        raise ValueError("a next-token loss needs at least 2 tokens per sequence")
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), tokens[:, 1:].flatten(), reduction="none")
    losses = losses.view(tokens.shape[0], -1)
    if per_token:
        return losses
    if attention_mask is None:
        return losses.mean()
    keep = attention_mask[:, 1:].to(losses.dtype)
    return (losses * keep).sum() / keep.sum()
