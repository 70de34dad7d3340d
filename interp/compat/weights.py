"""TransformerLens's weight names on interp models: stacked per-layer weights, QK/OV circuits, head labels.

Grouped-query models: as in TL 3, the stacked `W_K` / `W_V` / `b_K` / `b_V` repeat each kv head for the query
heads that share it ([layer, n_heads, ...]); the raw grouped weights are `_W_K` / `_W_V` / `_b_K` / `_b_V`.
`QK` and `OV` are `transformer_lens.FactoredMatrix` (imported on first use: TL is not a runtime dependency).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from transformer_lens.FactoredMatrix import FactoredMatrix


def factored_matrix(A: Tensor, B: Tensor) -> FactoredMatrix:
    try:
        from transformer_lens.FactoredMatrix import FactoredMatrix
    except ImportError as e:
        raise ImportError(
            "QK / OV circuits are transformer_lens.FactoredMatrix: pip install transformer-lens"
        ) from e
    return FactoredMatrix(A, B)


def expand_kv(x: Tensor, n_heads: int, head_dim: int = 0) -> Tensor:
    """Repeat grouped kv heads along `head_dim` so each query head has its own copy (a no-op for MHA)."""
    group = n_heads // x.shape[head_dim]
    return x if group == 1 else x.repeat_interleave(group, dim=head_dim)


class TLAttentionMixin:
    """`blocks[l].attn.QK` / `.OV` and the kv-expanded weights, on interp's `Attention`."""

    W_Q: Tensor
    W_K: Tensor
    W_V: Tensor
    W_O: Tensor
    n_heads: int

    @property
    def W_K_expanded(self) -> Tensor:
        return expand_kv(self.W_K.detach(), self.n_heads)

    @property
    def W_V_expanded(self) -> Tensor:
        return expand_kv(self.W_V.detach(), self.n_heads)

    @property
    def QK(self) -> FactoredMatrix:
        """[head, d_model, d_model] = W_Q[h] @ W_K[h].T, kv heads expanded."""
        return factored_matrix(self.W_Q.detach(), self.W_K_expanded.transpose(-1, -2))

    @property
    def OV(self) -> FactoredMatrix:
        """[head, d_model, d_model] = W_V[h] @ W_O[h], kv heads expanded."""
        return factored_matrix(self.W_V_expanded, self.W_O.detach())


def _zeros_or(p: Tensor | None, shape: tuple[int, ...], like: Tensor) -> Tensor:
    return torch.zeros(shape, dtype=like.dtype, device=like.device) if p is None else p


class TLWeightsMixin:
    """Mixed into `HookedTransformer`. Stacked tensors are fresh [layer, ...] tensors, detached."""

    blocks: Any  # nn.ModuleList of TransformerBlock (Any: nn.Module attributes are untyped)
    W_E: Tensor
    W_U: Tensor

    def _stack(self, get: Callable[[Any], Tensor]) -> Tensor:
        parts: list[Tensor] = []
        for b in self.blocks:
            with self.weights_of(b):  # type: ignore[attr-defined]  # an offloaded block's, fetched for this
                parts.append(get(b).detach().to(parts[0].device if parts else None))  # stacked on one device
        return torch.stack(parts)

    def _attn_bias(self, name: str, n: int) -> Tensor:
        cfg = self.cfg  # type: ignore[attr-defined]
        return self._stack(lambda b: _zeros_or(getattr(b.attn, name), (n, cfg.d_head), b.attn.W_Q))

    @property
    def W_Q(self) -> Tensor:
        return self._stack(lambda b: b.attn.W_Q)

    @property
    def _W_K(self) -> Tensor:
        return self._stack(lambda b: b.attn.W_K)

    @property
    def _W_V(self) -> Tensor:
        return self._stack(lambda b: b.attn.W_V)

    @property
    def W_K(self) -> Tensor:
        return expand_kv(self._W_K, self.cfg.n_heads, 1)  # type: ignore[attr-defined]

    @property
    def W_V(self) -> Tensor:
        return expand_kv(self._W_V, self.cfg.n_heads, 1)  # type: ignore[attr-defined]

    @property
    def W_O(self) -> Tensor:
        return self._stack(lambda b: b.attn.W_O)

    @property
    def b_Q(self) -> Tensor:
        return self._attn_bias("b_Q", self.cfg.n_heads)  # type: ignore[attr-defined]

    @property
    def _b_K(self) -> Tensor:
        return self._attn_bias("b_K", self.cfg.kv_heads)  # type: ignore[attr-defined]

    @property
    def _b_V(self) -> Tensor:
        return self._attn_bias("b_V", self.cfg.kv_heads)  # type: ignore[attr-defined]

    @property
    def b_K(self) -> Tensor:
        return expand_kv(self._b_K, self.cfg.n_heads, 1)  # type: ignore[attr-defined]

    @property
    def b_V(self) -> Tensor:
        return expand_kv(self._b_V, self.cfg.n_heads, 1)  # type: ignore[attr-defined]

    @property
    def b_O(self) -> Tensor:
        d = self.cfg.d_model  # type: ignore[attr-defined]
        return self._stack(lambda b: _zeros_or(b.attn.b_O, (d,), b.attn.W_O))

    @property
    def W_in(self) -> Tensor:
        return self._stack(lambda b: b.mlp.W_in)

    @property
    def W_gate(self) -> Tensor:
        if not self.cfg.gated_mlp:  # type: ignore[attr-defined]
            raise AttributeError("W_gate exists only on gated (SwiGLU) MLPs; this model's MLP is not gated")
        return self._stack(lambda b: b.mlp.W_gate)

    @property
    def W_out(self) -> Tensor:
        return self._stack(lambda b: b.mlp.W_out)

    @property
    def b_in(self) -> Tensor:
        return self._stack(lambda b: _zeros_or(b.mlp.b_in, (b.mlp.W_in.shape[1],), b.mlp.W_in))

    @property
    def b_out(self) -> Tensor:
        return self._stack(lambda b: _zeros_or(b.mlp.b_out, (b.mlp.W_out.shape[1],), b.mlp.W_out))

    @property
    def b_U(self) -> Tensor:
        """The unembedding bias; zeros (refusing in-place writes) on a model without one, as in TL."""
        return self.unembed.b_U  # type: ignore[attr-defined]

    @property
    def QK(self) -> FactoredMatrix:
        """[layer, head, d_model, d_model] as a FactoredMatrix, kv heads expanded."""
        return factored_matrix(self.W_Q, self.W_K.transpose(-1, -2))

    @property
    def OV(self) -> FactoredMatrix:
        """[layer, head, d_model, d_model] as a FactoredMatrix, kv heads expanded."""
        return factored_matrix(self.W_V, self.W_O)

    def all_head_labels(self) -> list[str]:
        cfg = self.cfg  # type: ignore[attr-defined]
        return [f"L{layer}H{h}" for layer in range(cfg.n_layers) for h in range(cfg.n_heads)]

    def accumulated_bias(
        self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True
    ) -> Tensor:
        """Sum of the output biases (b_O, b_out) written into resid_pre[layer] (resid_mid with mlp_input)."""
        cfg = self.cfg  # type: ignore[attr-defined]
        if not 0 <= layer <= cfg.n_layers or (mlp_input and layer == cfg.n_layers):
            raise ValueError(
                f"layer={layer} out of range for a {cfg.n_layers}-layer model (mlp_input={mlp_input})"
            )
        total = torch.zeros(cfg.d_model, dtype=self.W_E.dtype, device=self.W_E.device)
        for i in range(layer + (1 if mlp_input else 0)):
            attn, mlp = self.blocks[i].attn, self.blocks[i].mlp
            with self.weights_of(self.blocks[i]):  # type: ignore[attr-defined]
                if attn.b_O is not None:
                    total = total + attn.b_O.detach().to(total.device)
                if include_mlp_biases and i < layer and mlp.b_out is not None:
                    total = total + mlp.b_out.detach().to(total.device)
        return total

    def tl_named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        """named_parameters() under TL 3's names: ln1.w, attn.W_K (raw, as TL's `_W_K`), unembed.W_U, ..."""
        renames = {".attn.W_K": ".attn._W_K", ".attn.W_V": ".attn._W_V", ".attn.b_K": ".attn._b_K",
                   ".attn.b_V": ".attn._b_V"} if self.cfg.kv_heads != self.cfg.n_heads else {}  # type: ignore[attr-defined]  # fmt: skip
        for name, p in self.named_parameters():  # type: ignore[attr-defined]
            for ours, theirs in renames.items():
                if name.endswith(ours):
                    name = name.removesuffix(ours) + theirs
            yield name, p

    def tl_state_dict(self) -> dict[str, Tensor]:
        """The weights as TL 3's HookedTransformer names them (untied W_U, TL's [n_heads, ...] layouts)."""
        sd = {k: v.detach() for k, v in self.tl_named_parameters()}
        if "unembed.W_U" not in sd:
            sd["unembed.W_U"] = self.W_U.detach()
        return sd
