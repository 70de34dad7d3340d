"""`ActivationCache`: activations by hook name, and the residual-stream decompositions built on them.

Every key owns its storage. In the forward, `blocks.{l}.hook_resid_post` and `blocks.{l+1}.hook_resid_pre`
are the same tensor; TransformerLens stores it twice under two keys that alias one buffer, so the cache
looks bigger than it is and an in-place edit of one key changes the other. Here the second key gets a copy,
which makes `nbytes` the real memory.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from interp.compat.cache import TLCacheMixin
from interp.compat.names import get_act_name
from interp.compat.slicing import _final_or, _slice_pos
from interp.hooks import HookPoint, HookSpec

if TYPE_CHECKING:
    from interp.transformer import HookedTransformer

PosSlice = int | slice | Sequence[int] | Tensor | None

_BLOCK = {"resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"}
_ATTN = {"q", "k", "v", "rot_q", "rot_k", "attn_scores", "pattern", "z", "result"}
_MLP = {"pre", "pre_linear", "post"}
_LN = {"scale", "normalized"}


def act_name(name: str, layer: int | None = None, sub: str | None = None) -> str:
    """TransformerLens shorthand -> hook name: ("resid_pre", 3) -> "blocks.3.hook_resid_pre"."""
    if name in ("embed", "pos_embed"):
        return f"hook_{name}"
    if name in _LN:
        if layer is None:
            return f"ln_final.hook_{name}"
        return f"blocks.{layer}.{sub or 'ln1'}.hook_{name}"
    if layer is None:
        raise KeyError(f"{name!r} needs a layer, e.g. cache[{name!r}, 0]")
    if name in _BLOCK:
        return f"blocks.{layer}.hook_{name}"
    if name in _ATTN:
        return f"blocks.{layer}.attn.hook_{name}"
    if name in _MLP:
        return f"blocks.{layer}.mlp.hook_{name}"
    known = sorted(_BLOCK | _ATTN | _MLP | _LN | {"embed", "pos_embed"})
    raise KeyError(f"unknown activation shorthand {name!r}; known: {', '.join(known)}")


def cache_hooks(
    names: list[str], store: dict[str, Tensor], device: torch.device | str | None
) -> list[HookSpec]:
    """Forward hooks that copy activations into `store`, one storage per key."""
    owned: set[int] = set()

    def save(x: Tensor, hook: HookPoint) -> None:
        t = x.detach() if device is None else x.detach().to(device)
        storage = t.untyped_storage()
        if storage.data_ptr() in owned or storage.nbytes() != t.numel() * t.element_size():
            t = t.clone()  # shares a buffer with another key or is a view into a larger one
        owned.add(t.untyped_storage().data_ptr())
        store[hook.name] = t

    return [(n, save) for n in names]


def deferred_results(model: HookedTransformer, names: list[str]) -> dict[str, str]:
    """hook_result names the cache can derive from hook_z after the run, {result name: z name}.

    Per-head results are n_heads times the size of z (113 MiB for GPT-2 small at 4x64); when nothing but the
    cache wants them, materialising them inside the forward costs time and memory for keys that may never
    be read. A hook_result with a hook of its own (which may edit it) is computed in the forward as usual.
    """
    return {
        n: n.removesuffix("hook_result") + "hook_z"
        for n in names
        if n.endswith(".attn.hook_result") and not model.hook_dict[n].active and not _offloaded_W_O(model, n)
    }


def _offloaded_W_O(model: HookedTransformer, result_name: str) -> bool:
    """An offloaded block's W_O is on the meta device between forwards: compute its results in the forward."""
    return bool(model.get_submodule(result_name.removesuffix(".hook_result")).W_O.is_meta)


_PROBES: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}


def weight_fingerprint(W: Tensor) -> tuple[Any, ...]:
    """What identifies a weight's values: storage, version, and two checksums over every element.

    `W.data.mul_(2)` and other `.data` edits do not bump `W._version`, so the version alone misses them;
    the sum and a fixed random projection (one read of W, well under a millisecond for GPT-2 small's W_O)
    change with any edit that is not crafted to preserve both.
    """
    flat = W.detach().reshape(-1)
    key = (flat.numel(), flat.dtype, flat.device)
    if key not in _PROBES:
        gen = torch.Generator().manual_seed(flat.numel())
        _PROBES[key] = torch.rand(flat.numel(), generator=gen).to(flat.device, flat.dtype)
    sums = torch.stack([flat.sum(), flat @ _PROBES[key]]).tolist()
    return (W.data_ptr(), W._version, *sums)


class ActivationCache(TLCacheMixin, Mapping[str, Tensor]):
    def __init__(
        self,
        store: dict[str, Tensor],
        model: HookedTransformer,
        keys: list[str] | None = None,
        deferred: dict[str, str] | None = None,
    ) -> None:
        self._store = store  # what is held: the requested activations, and z kept for deferred results
        self.model = model
        self._keys = list(store) if keys is None else keys
        self.has_batch_dim = True  # False after remove_batch_dim()
        # Deferred per-head results: computed from z and W_O on first access, with W_O as it was in the run.
        self._deferred = {
            name: (z, self._W_O(name), weight_fingerprint(self._W_O(name)))
            for name, z in (deferred or {}).items()
        }

    # ---- mapping -------------------------------------------------------------------------------------------
    def __getitem__(self, key: str | tuple[Any, ...]) -> Tensor:
        # TransformerLens's shorthand ("attn" is the pattern, "k6", negative layers), see interp.compat.names.
        n = self.model.cfg.n_layers
        if isinstance(key, str):
            name = key if key in self._store else get_act_name(key, n_layers=n)
        else:
            name = get_act_name(*key, n_layers=n)
        if name in getattr(self.model, "absent_hooks", {}):
            raise KeyError(f"{name!r} does not exist in this model: {self.model.absent_hooks[name]}")
        if name not in self._keys:
            raise KeyError(self._missing(name, key))
        if name in self._deferred:
            self._store[name] = self._derive_result(name)
        return self._store[name]

    def _missing(self, name: str, key: Any = None) -> str:
        held = f"{self._keys[0]} ... {self._keys[-1]}" if len(self._keys) > 2 else ", ".join(self._keys)
        close = difflib.get_close_matches(name, self._keys, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        asked = f" (asked as {key!r})" if key is not None and key != name else ""
        why = (
            "the model has no such hook point"
            if name not in self.model.hook_dict
            else "run_with_cache with a names_filter (and start/stop layers) that include it"
        )
        return f"{name!r} is not in this cache, which holds {len(self._keys)} activations ({held}){hint}; {why}{asked}"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def _W_O(self, result_name: str) -> Tensor:
        return self.model.get_submodule(result_name.removesuffix(".hook_result")).W_O

    def _derive_result(self, name: str) -> Tensor:
        z_name, W_O, fingerprint = self._deferred[name]
        if weight_fingerprint(W_O) != fingerprint:
            raise RuntimeError(
                f"{name}: W_O was modified after the run, so the per-head result cannot be derived; "
                f"read it before editing weights, or cache it with a hook on it (computed in the forward)"
            )
        del self._deferred[name]
        z = self._store[z_name]
        return torch.einsum("...hd,hdm->...hm", z, W_O.detach().to(z.device, z.dtype))

    @property
    def nbytes(self) -> int:
        """Bytes held, summed over tensors; equals `unique_nbytes()` because no two share storage.

        Deferred per-head results count once they are read."""
        return sum(t.numel() * t.element_size() for t in self._store.values())

    def unique_nbytes(self) -> int:
        """Bytes of the distinct storages behind the keys (the memory actually held)."""
        seen = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in self._store.values()}
        return sum(seen.values())

    def to(self, device: torch.device | str) -> ActivationCache:
        """Move every activation to `device` in place; returns self for chaining."""
        for k, t in self._store.items():
            self._store[k] = t.to(device)
        return self

    # ---- residual stream decompositions --------------------------------------------------------------------
    def decompose_resid(
        self,
        layer: int | None = None,
        mlp_input: bool = False,
        mode: Literal["all", "mlp", "attn"] = "all",
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        incl_embeds: bool = True,
        return_labels: bool = False,
    ) -> Any:
        """Stack [embed, pos_embed, attn_0, mlp_0, ...] of everything written into resid_pre[layer].

        The stack sums to `resid_pre[layer]` (to `resid_mid[layer]` with mlp_input, and to the final
        residual when layer is None or -1, as in TransformerLens). `mode` keeps only "attn" or "mlp" terms.
        Returns the stack, or (stack, labels) with return_labels: "embed", "0_attn_out", "0_mlp_out", ...
        Post-norms (Gemma 2/3, OLMo 2) sit inside attn_out / mlp_out, so the sum still holds; in a parallel
        block the MLP reads resid_pre, so mlp_input adds no attn_out of its own layer.
        """
        cfg = self.model.cfg
        if cfg.norms.residual:
            raise ValueError(
                "decompose_resid: this model is post-LN (OPT-350m style): ln1 / ln2 renormalise the residual "
                "itself after each add, so no stack of component outputs sums to it; use accumulated_resid"
            )
        n = cfg.n_layers
        layer = _final_or(layer, n)
        if mode not in ("all", "mlp", "attn"):
            raise ValueError(f"mode must be 'all', 'mlp' or 'attn', got {mode!r}")
        parts: list[Tensor] = []
        labels: list[str] = []
        if incl_embeds:
            for name in ("embed", "pos_embed"):
                if f"hook_{name}" in self.model.hook_dict:
                    parts.append(self[name])
                    labels.append(name)
        for i in range(layer):
            if mode != "mlp":
                parts.append(self["attn_out", i])
                labels.append(f"{i}_attn_out")
            if mode != "attn":
                parts.append(self["mlp_out", i])
                labels.append(f"{i}_mlp_out")
        if mlp_input and mode != "mlp":
            if layer >= n:
                raise ValueError("mlp_input needs a layer below n_layers")
            if not cfg.parallel_attn_mlp:
                parts.append(self["attn_out", layer])
                labels.append(f"{layer}_attn_out")
        stack = _slice_pos(torch.stack(parts), pos_slice)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice)
        return (stack, labels) if return_labels else stack

    def accumulated_resid(
        self,
        layer: int | None = None,
        incl_mid: bool = False,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        mlp_input: bool = False,
        return_labels: bool = False,
    ) -> Any:
        """The residual stream after each step: resid_pre[0..layer] (+ resid_mid), and "final_post".

        `apply_ln`, as in TransformerLens 3.9: at the unembed (layer None / -1 / n_layers) every state goes
        through ln_final itself, weight and bias included, with its own statistics, so `stack @ W_U + b_U`
        is the logit lens (the "final_post" row gives the model's logits); below it, the stack is divided
        by the cached scale of the norm that reads layer `layer` (no weight), as `apply_ln_to_stack` does.
        Returns the stack [layers, batch, *pos, d_model], or (stack, labels) with return_labels.
        """
        n = self.model.cfg.n_layers
        layer = _final_or(layer, n)
        parts: list[Tensor] = []
        labels: list[str] = []
        for i in range(layer + 1):
            if i == n:
                parts.append(self["resid_post", n - 1])
                labels.append("final_post")
                continue
            parts.append(self["resid_pre", i])
            labels.append(f"{i}_pre")
            if (
                (incl_mid and i < layer) or (mlp_input and i == layer)
            ) and not self.model.cfg.parallel_attn_mlp:
                parts.append(self["resid_mid", i])
                labels.append(f"{i}_mid")
        stack = _slice_pos(torch.stack(parts), pos_slice)
        if apply_ln:  # at the unembed, TL 3.9's logit lens: ln_final with each state's own statistics
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice, recompute_ln=layer == n)
        return (stack, labels) if return_labels else stack

    def stack_head_results(
        self,
        layer: int | None = -1,
        return_labels: bool = False,
        incl_remainder: bool = False,
        pos_slice: PosSlice = None,
        apply_ln: bool = False,
    ) -> Any:
        """Each head's write into the residual stream for all layers below `layer` (None, -1: all), "L{l}H{h}".

        Uses `hook_result` when cached, else computes z[h] @ W_O[h] from the cached `hook_z`. With
        `incl_remainder`, a last "remainder" row holds the rest of resid_post[layer - 1].
        Returns the stack [heads, batch, *pos, d_model], or (stack, labels) with return_labels.
        """
        cfg = self.model.cfg
        layer = _final_or(layer, cfg.n_layers)
        parts, labels = [], []
        for i in range(layer):
            name = act_name("result", i)
            with self.model.weights_of(self.model.blocks[i]):  # an offloaded block's, fetched
                if name in self:
                    result = self[name]
                else:
                    W_O = self.model.blocks[i].attn.W_O.to(self["z", i].device)
                    result = torch.einsum("...hd,hdm->...hm", self["z", i], W_O)
                # Gemma 2/3, OLMo 2: each head goes through ln1_post, frozen at this run's scale.
                post = getattr(self.model.blocks[i], "ln1_post", None)
                if hasattr(post, "w"):
                    scale = self[f"blocks.{i}.ln1_post.hook_scale"].to(result.dtype)
                    result = post.w.to(result) * post.center(result) / scale[..., None, :]
            parts.append(result.movedim(-2, 0))  # [head, batch, pos, d_model]
            labels += [f"L{i}H{h}" for h in range(cfg.n_heads)]
        if parts:
            stack = _slice_pos(torch.cat(parts), pos_slice)
        else:
            stack = _slice_pos(self["embed"], pos_slice)[None][:0]  # no layer below: an empty stack
        if incl_remainder:
            rest = _slice_pos(self["resid_post", layer - 1], pos_slice) - stack.sum(0)
            stack, labels = torch.cat([stack, rest[None]]), [*labels, "remainder"]
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, False, pos_slice)
        return (stack, labels) if return_labels else stack

    def apply_ln_to_stack(
        self,
        residual_stack: Float[Tensor, "... batch *pos d_model"],
        layer: int | None = None,
        mlp_input: bool = False,
        pos_slice: PosSlice = None,
        batch_slice: PosSlice = None,
        has_batch_dim: bool = True,
        recompute_ln: bool = False,
    ) -> Tensor:
        """Push a stack through the norm that reads it, frozen at this run's scale (centre, then divide).

        TransformerLens 3's signature and meaning. The norm's weight and bias are not applied (on a
        `fold_ln` model they are folded into what reads the norm). `pos_slice` / `batch_slice` select the
        cached scale to match a stack that was already sliced; `batch_slice` also slices the stack's
        batch axis (axis 1) when `has_batch_dim`. With `recompute_ln` at the unembed (layer None, -1 or
        n_layers), each component instead goes through ln_final itself, weight and bias included, with its
        own statistics: the logit lens (`accumulated_resid(apply_ln=True)` does this at the final layer).
        """
        n = self.model.cfg.n_layers
        layer = _final_or(layer, n)
        if has_batch_dim:
            residual_stack = _slice_pos(residual_stack, batch_slice, 1)
        if recompute_ln and layer >= n:
            return self.model.ln_final(residual_stack)
        if layer >= n:
            norm, scale = self.model.ln_final, self["scale"]
        else:
            cfg = self.model.cfg
            sub = "ln2" if mlp_input and not cfg.norms.shared_ln else "ln1"
            if not cfg.norms.pre or cfg.norms.residual:
                raise ValueError(
                    f"apply_ln at layer {layer}: no norm reads the residual stream there in this model "
                    "(its norms follow attention / the MLP); use layer=None for ln_final"
                )
            norm, scale = getattr(self.model.blocks[layer], sub), self["scale", layer, sub]
        scale = _slice_pos(scale, pos_slice)
        if self.has_batch_dim:
            scale = _slice_pos(scale, batch_slice, 0)
        return norm.center(residual_stack) / scale.to(residual_stack.dtype)

    def direct_logit_attrs(
        self,
        residual_stack: Float[Tensor, "... batch *pos d_model"],
        tokens: int | str | Tensor,
        incorrect_tokens: int | str | Tensor | None = None,
        pos_slice: PosSlice = None,
    ) -> Tensor:
        """Direct logit attribution on any model: each component's share of logit[tokens] (- incorrect).

        interp's meaning, for a model whose ln_final keeps its weight: the (unnormalised) stack goes
        through ln_final frozen at this run's scale, its weight included, then through W_U. Summed over a
        full decomposition it is the logit minus the constant terms (ln_final's bias through W_U, and
        b_U). TransformerLens's `logit_attrs` leaves ln_final's weight out (it expects a `fold_ln` model),
        so the two agree exactly on a folded model and differ by that weight on an unfolded one.
        """
        direction = self.model.tokens_to_residual_directions(tokens)
        if incorrect_tokens is not None:
            direction = direction - self.model.tokens_to_residual_directions(incorrect_tokens)
        direction = direction * getattr(self.model.ln_final, "w", 1.0)
        scaled = self.apply_ln_to_stack(residual_stack, None, pos_slice=pos_slice)
        if direction.ndim == 2 and scaled.ndim == 4:  # one token per batch row, the stack keeps its pos axis
            direction = direction[:, None, :]
        return (scaled * direction.to(scaled)).sum(-1)
