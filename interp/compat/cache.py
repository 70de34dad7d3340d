"""`TLCacheMixin`: the rest of TransformerLens 3's `ActivationCache` API, on interp's cache.

interp's cache keeps one stored tensor per key; these methods only read it (or, for `remove_batch_dim` and
`compute_head_results`, replace entries in place as TL does). Layers count from the end when negative.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from interp.compat.slicing import _slice_pos

if TYPE_CHECKING:
    from interp.transformer import HookedTransformer

PosSlice = Any  # int | slice | Sequence[int] | Tensor | None, as in interp.cache


class TLCacheMixin:
    """Mixed into `interp.cache.ActivationCache`; relies on its `_store`, `_keys`, `model` and `__getitem__`."""

    model: HookedTransformer
    has_batch_dim: bool
    _store: dict[str, Tensor]
    _keys: list[str]
    _deferred: dict[str, Any]

    def __getitem__(self, key: Any) -> Tensor:  # provided by ActivationCache
        raise NotImplementedError

    def __iter__(self) -> Iterator[str]:  # provided by ActivationCache
        raise NotImplementedError

    def _layer_count(self, layer: int | None) -> int:
        n = self.model.cfg.n_layers
        if layer is None or layer == -1:
            return n
        if not 0 <= layer <= n:
            raise ValueError(f"layer={layer} out of range: use 0..{n}, or -1/None for every layer")
        return layer

    # ---- shape -----------------------------------------------------------------------------------------------
    def remove_batch_dim(self) -> TLCacheMixin:
        """Drop the batch axis of every activation, in place; only for a batch of one (as TL)."""
        if not self.has_batch_dim:
            raise ValueError("the batch dimension was already removed from this cache")
        sizes = {k: t.shape[0] for k, t in self._store.items() if t.ndim}
        if any(s != 1 for s in sizes.values()):
            raise ValueError(
                f"remove_batch_dim needs a batch of 1; this cache has batch {max(sizes.values())}"
            )
        for k, t in self._store.items():
            self._store[k] = t[0]
        self.has_batch_dim = False
        return self

    # ---- stacks ----------------------------------------------------------------------------------------------
    def stack_activation(
        self, activation_name: str, layer: int | None = -1, sublayer_type: str | None = None
    ) -> Tensor:
        """`cache[activation_name, l]` for every layer below `layer` (-1: all), stacked on a new axis 0."""
        return torch.stack([self[activation_name, i, sublayer_type] for i in range(self._layer_count(layer))])

    def compute_head_results(self) -> None:
        """Store every layer's per-head result `blocks.{l}.attn.hook_result` (z[h] @ W_O[h]) in the cache."""
        for i in range(self.model.cfg.n_layers):
            name = f"blocks.{i}.attn.hook_result"
            if name in self._keys:
                self[name]  # a deferred result is derived now
                continue
            block: Any = self.model.blocks[i]
            z = self["z", i]
            with self.model.weights_of(block):  # an offloaded block's, fetched
                W_O = block.attn.W_O.detach().to(z.device, z.dtype)
            self._store[name] = torch.einsum("...hd,hdm->...hm", z, W_O)
            self._keys.append(name)

    def get_neuron_results(
        self, layer: int, neuron_slice: PosSlice = None, pos_slice: PosSlice = None
    ) -> Tensor:
        """Each neuron's write into the residual stream: post[..., n] * W_out[n], [batch, pos, neuron, d_model]."""
        post = _slice_pos(self["post", layer], pos_slice)
        block: Any = self.model.blocks[layer]
        with self.model.weights_of(block):  # an offloaded block's, fetched
            W_out = block.mlp.W_out.detach().to(post.device)
        post, W_out = _slice_pos(post, neuron_slice, -1), _slice_pos(W_out, neuron_slice, 0)
        if post.ndim == W_out.ndim - 1:  # an int neuron_slice dropped the neuron axis
            post, W_out = post[..., None], W_out[None]
        return post[..., None] * W_out.to(post)

    def stack_neuron_results(
        self,
        layer: int | None,
        pos_slice: PosSlice = None,
        neuron_slice: PosSlice = None,
        return_labels: bool = False,
        incl_remainder: bool = False,
        apply_ln: bool = False,
    ) -> Any:
        """Every neuron's result for the layers below `layer`, [neuron, batch, *pos, d_model], labels "L{l}N{n}"."""
        layer = self._layer_count(layer)
        idx = _slice_pos(torch.arange(self.model.cfg.d_mlp), neuron_slice, 0).reshape(-1).tolist()
        labels = [f"L{i}N{n}" for i in range(layer) for n in idx]
        parts = [self.get_neuron_results(i, neuron_slice, pos_slice).movedim(-2, 0) for i in range(layer)]
        template = _slice_pos(self["embed"], pos_slice)
        stack = torch.cat(parts) if parts else template[None][:0]
        if incl_remainder:
            rest = _slice_pos(self["resid_post", layer - 1], pos_slice) - stack.sum(0)
            stack, labels = torch.cat([stack, rest[None]]), [*labels, "remainder"]
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, False, pos_slice)  # type: ignore[attr-defined]
        return (stack, labels) if return_labels else stack

    def get_full_resid_decomposition(
        self,
        layer: int | None = None,
        mlp_input: bool = False,
        expand_neurons: bool = True,
        apply_ln: bool = False,
        pos_slice: PosSlice = None,
        return_labels: bool = False,
    ) -> Any:
        """Heads, then neurons (or MLP layers), embed, pos_embed and the accumulated biases; sums to the residual."""
        layer = self._layer_count(layer)
        heads, labels = self.stack_head_results(  # type: ignore[attr-defined]
            layer + (1 if mlp_input else 0), pos_slice=pos_slice, return_labels=True
        )
        parts = [heads]
        if layer > 0:
            if expand_neurons:
                neurons, more = self.stack_neuron_results(layer, pos_slice=pos_slice, return_labels=True)
            else:
                neurons, more = self.decompose_resid(  # type: ignore[attr-defined]
                    layer, mlp_input, mode="mlp", pos_slice=pos_slice, incl_embeds=False, return_labels=True
                )
            parts.append(neurons)
            labels = [*labels, *more]
        for name in ("embed", "pos_embed"):
            if f"hook_{name}" in self.model.hook_dict:
                parts.append(_slice_pos(self[name], pos_slice)[None])
                labels = [*labels, name]
        bias = self.model.accumulated_bias(layer, mlp_input, include_mlp_biases=expand_neurons)
        parts.append(bias.to(heads).expand((1, *heads.shape[1:])))
        stack = torch.cat(parts)
        if apply_ln:
            stack = self.apply_ln_to_stack(stack, layer, mlp_input, pos_slice)  # type: ignore[attr-defined]
        return (stack, [*labels, "bias"]) if return_labels else stack

    # ---- direct logit attribution, TL's meaning ---------------------------------------------------------
    def logit_attrs(
        self,
        residual_stack: Tensor,
        tokens: int | str | Tensor,
        incorrect_tokens: int | str | Tensor | None = None,
        pos_slice: PosSlice = None,
        batch_slice: PosSlice = None,
        has_batch_dim: bool = True,
    ) -> Tensor:
        """TransformerLens 3's `logit_attrs`: each component's dot product with the tokens' W_U columns.

        The stack is the raw (unnormalised) decomposition; it is divided by ln_final's cached scale here
        (`apply_ln_to_stack(layer=-1, pos_slice, batch_slice, has_batch_dim)`), and ln_final's weight is
        not applied, as in TL: the numbers are the logits' on a `fold_ln` model. For attribution that
        includes ln_final's weight on an unfolded model, use interp's `cache.direct_logit_attrs`.
        `tokens` is an id, a single-token string, or ids [batch] / [batch, pos] matching the stack.
        """
        if incorrect_tokens is not None:
            shapes = [_token_shape(self.model, t) for t in (tokens, incorrect_tokens)]
            if shapes[0] != shapes[1]:
                raise ValueError(
                    f"tokens and incorrect_tokens must have the same shape, got {tuple(shapes[0])} and "
                    f"{tuple(shapes[1])}"
                )
        direction = self.model.tokens_to_residual_directions(tokens)
        if incorrect_tokens is not None:
            direction = direction - self.model.tokens_to_residual_directions(incorrect_tokens)
        scaled = self.apply_ln_to_stack(  # type: ignore[attr-defined]
            residual_stack, -1, pos_slice=pos_slice, batch_slice=batch_slice, has_batch_dim=has_batch_dim
        )
        try:  # broadcast as TL does; only a mismatch torch would refuse anyway gets this message
            torch.broadcast_shapes(direction.shape, scaled.shape)
        except RuntimeError:
            raise ValueError(
                f"logit_attrs: the tokens give directions {tuple(direction.shape)} [.., d_model], which do "
                f"not line up with the stack's {tuple(scaled.shape)} [component, batch, (pos,) d_model]; "
                "pass tokens [batch] with a stack taken at one position (pos_slice=-1), or tokens "
                "[batch, pos] with a full one"
            ) from None
        return (scaled * direction.to(scaled)).sum(-1)

    # ---- notebook niceties -----------------------------------------------------------------------------------
    def _ipython_key_completions_(self) -> list[str]:
        return list(self)

    def __repr__(self) -> str:
        by_layer: dict[str, list[str]] = defaultdict(list)
        for k in self._keys:
            m = re.match(r"blocks\.(\d+)\.(.*)", k)
            group, short = (f"layer {m.group(1)}", m.group(2)) if m else ("model", k)
            by_layer[group].append(short.replace("hook_", ""))
        nbytes = sum(t.numel() * t.element_size() for t in self._store.values())
        lines = [f"ActivationCache({len(self._keys)} activations, {nbytes / 2**20:.1f} MiB held)"]
        for group, names in by_layer.items():
            lines.append(f"  {group}: {', '.join(names)}")
        return "\n".join(lines)


def _token_shape(model: Any, tokens: Any) -> torch.Size:
    if isinstance(tokens, str):
        return torch.Size([])
    if isinstance(tokens, (list, tuple)) and tokens and isinstance(tokens[0], str):
        return torch.Size([len(tokens)])
    return torch.as_tensor(tokens).shape
