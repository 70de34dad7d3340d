"""Opt-in weight processing, as TransformerLens 3's `from_pretrained` does it by default.

Each step leaves the model's log-probs unchanged (to float error) and equals TL's on the same weights:
- `fold_layer_norm`: a norm's weight (and LayerNorm's bias) moves into the weights that read its output;
  LayerNorm readers are also centred. The norms keep only their normalisation (TL's "LNPre"/"RMSPre").
- `center_writing_weights`: everything written into the residual stream is mean-free (LayerNorm only).
- `center_unembed`: W_U and b_U are mean-free over the vocabulary (the logits shift, the log-probs don't).
- `fold_value_biases`: b_V moves into b_O (pattern rows sum to one), so z no longer carries it.

Tied embeddings are untied first where a step would change W_U through W_E; a missing bias that a step
needs is added (zeros) and the frozen config is replaced to say so, so `save`/`load` still round-trip.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch import Tensor, nn


def _param(module: nn.Module, name: str, shape: tuple[int, ...], like: Tensor) -> nn.Parameter:
    """The parameter `name`, created as zeros when the model was built without it."""
    p = getattr(module, name)
    if p is None:
        p = nn.Parameter(torch.zeros(shape, dtype=like.dtype, device=like.device))
        setattr(module, name, p)
    return p


class TLProcessingMixin:
    config: Any
    processing: dict[str, bool]
    blocks: Any  # nn.ModuleList of TransformerBlock (Any: nn.Module attributes are untyped)
    unembed: Any
    ln_final: Any
    embed: Any
    pos_embed: Any

    def _replace_config(self, **changes: Any) -> None:
        self.config = dataclasses.replace(self.config, **changes)

    def _untie_unembed(self) -> None:
        """Give the unembedding its own W_U (and a b_U), as TL's HookedTransformer always has."""
        from interp.layers.embed import Unembed

        old = self.unembed
        if not self.config.tie_embeddings and old.bias is not None:
            return
        self._replace_config(tie_embeddings=False, unembed_bias=True)
        new: Any = Unembed(self.config).to(old.W_U.device, old.W_U.dtype)
        with torch.no_grad():
            new.W_U.copy_(old.W_U)
            new.b_U.copy_(old.b_U)  # zeros when the model had none
        self.unembed = new

    @torch.no_grad()
    def fold_layer_norm(self, fold_biases: bool = True, center_weights: bool = True) -> None:
        """Fold every norm's weight (and bias) into the weights reading from it; see the module docstring."""
        if self.processing.get("fold_ln"):
            raise ValueError("fold_layer_norm was already applied to this model")
        layernorm = self.config.norm == "layernorm"
        fold_biases, center_weights = fold_biases and layernorm, center_weights and layernorm
        if fold_biases:
            self._replace_config(qkv_bias=True, mlp_bias=True)
        self._untie_unembed()
        for block in self.blocks:
            attn, mlp = block.attn, block.mlp
            w, b = block.ln1.w, getattr(block.ln1, "b", None)
            for name in ("Q", "K", "V"):
                W = getattr(attn, f"W_{name}")  # [head, d_model, d_head]
                if fold_biases:
                    bias = _param(attn, f"b_{name}", (W.shape[0], W.shape[2]), W)
                    bias.add_(torch.einsum("m,hmd->hd", b, W))
                W.mul_(w[None, :, None])
                if center_weights:
                    W.sub_(W.mean(1, keepdim=True))
            w, b = block.ln2.w, getattr(block.ln2, "b", None)
            for name in ("in", "gate"):
                W = getattr(mlp, f"W_{name}", None)  # [d_model, d_mlp]
                if W is None:
                    continue
                if fold_biases:
                    _param(mlp, f"b_{name}", (W.shape[1],), W).add_(b @ W)
                W.mul_(w[:, None])
                if center_weights:
                    W.sub_(W.mean(0, keepdim=True))
            if fold_biases:
                _param(mlp, "b_out", (mlp.W_out.shape[1],), mlp.W_out)
        W_U, ln_f = self.unembed.W_U, self.ln_final
        if fold_biases:
            self.unembed.b_U.add_(ln_f.b @ W_U)
        W_U.mul_(ln_f.w[:, None])
        if center_weights:
            W_U.sub_(W_U.mean(0, keepdim=True))
        for norm in [*(n for blk in self.blocks for n in (blk.ln1, blk.ln2)), ln_f]:
            norm.w.fill_(1.0)
            if getattr(norm, "b", None) is not None:
                norm.b.zero_()
        self.processing["fold_ln"] = True

    def _layernorm_only(self, step: str) -> bool:
        if self.config.norm != "layernorm":
            warnings.warn(
                f"{step} needs LayerNorm (this model uses {self.config.norm}); skipped, as TL does",
                stacklevel=3,
            )
            return False
        return True

    @torch.no_grad()
    def center_writing_weights(self) -> None:
        """Make W_E, W_pos, W_O, b_O, W_out, b_out mean-free along d_model (LayerNorm models only)."""
        if not self._layernorm_only("center_writing_weights"):
            return
        self._untie_unembed()  # centring W_E must not move a tied W_U
        self._replace_config(attn_out_bias=True, mlp_bias=True)
        writers = [self.embed.W_E] + ([self.pos_embed.W_pos] if self.pos_embed is not None else [])
        for block in self.blocks:
            attn, mlp = block.attn, block.mlp
            writers += [attn.W_O, _param(attn, "b_O", (attn.W_O.shape[-1],), attn.W_O), mlp.W_out]
            writers.append(_param(mlp, "b_out", (mlp.W_out.shape[1],), mlp.W_out))
            for name in ("b_in", "b_gate"):
                if hasattr(mlp, name.replace("b_", "W_")):
                    _param(mlp, name, (mlp.W_in.shape[1],), mlp.W_in)
        for W in writers:
            W.sub_(W.mean(-1, keepdim=True))
        self.processing["center_writing_weights"] = True

    @torch.no_grad()
    def center_unembed(self) -> None:
        """Make W_U and b_U mean-free over the vocabulary: each logit shifts by the same amount."""
        self._untie_unembed()
        self.unembed.W_U.sub_(self.unembed.W_U.mean(-1, keepdim=True))
        self.unembed.b_U.sub_(self.unembed.b_U.mean())
        self.processing["center_unembed"] = True

    @torch.no_grad()
    def fold_value_biases(self) -> None:
        """b_O += sum_h b_V[h] @ W_O[h]; b_V = 0 (exact, because each pattern row sums to one)."""
        if not self.config.qkv_bias:
            self.processing["fold_value_biases"] = True
            return  # no b_V to fold
        self._replace_config(attn_out_bias=True)
        for block in self.blocks:
            attn = block.attn
            b_V = attn.b_V.repeat_interleave(attn.n_heads // attn.n_kv_heads, dim=0)
            _param(attn, "b_O", (attn.W_O.shape[-1],), attn.W_O).add_(
                torch.einsum("hd,hdm->m", b_V, attn.W_O)
            )
            attn.b_V.zero_()
        self.processing["fold_value_biases"] = True

    def process_weights_(
        self,
        fold_ln: bool = True,
        center_writing_weights: bool = True,
        center_unembed: bool = True,
        fold_value_biases: bool = True,
    ) -> None:
        """TL 3's processing, in TL's order; `interp.load(..., fold_ln=True, ...)` calls this."""
        if fold_ln:
            self.fold_layer_norm()
        if center_writing_weights:
            self.center_writing_weights()
        if center_unembed:
            self.center_unembed()
        if fold_value_biases:
            self.fold_value_biases()
