"""Token embedding, learned positions, and the unembedding (tied or separate)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from interp.config import ModelConfig


class Embed(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(tokens, self.W_E)


class PosEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))

    def forward(self, positions: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(positions, self.W_pos)


class Unembed(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab)) if cfg.unembed_bias else None

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        return F.linear(x, self.W_U.t(), self.b_U)


class TiedUnembed(nn.Module):
    """W_U = W_E.T, read from the embedding at call time so the two can never drift apart."""

    def __init__(self, cfg: ModelConfig, embed: Embed) -> None:
        super().__init__()
        self.__dict__["_embed"] = (
            embed  # a reference, not a submodule: W_E must not appear twice in state_dict
        )
        self.b_U = nn.Parameter(torch.zeros(cfg.d_vocab)) if cfg.unembed_bias else None

    @property
    def W_U(self) -> Tensor:
        return self._embed.W_E.t()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        return F.linear(x, self._embed.W_E, self.b_U)


def make_unembed(cfg: ModelConfig, embed: Embed) -> Unembed | TiedUnembed:
    return TiedUnembed(cfg, embed) if cfg.tie_embeddings else Unembed(cfg)
