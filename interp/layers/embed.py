"""Token embedding, learned positions, and the unembedding (tied or separate).

Variants: Gemma scales the embedding by sqrt(d_model); OPT-350m embeds in a narrower width and projects
in and out of the residual stream; Gemma 2 soft-caps the logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from interp.config import ModelConfig
from interp.layers.attention import soft_cap


class Embed(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.embed_width))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(tokens, self.W_E)


class ScaledEmbed(Embed):
    """Gemma: E = W_E[token] * sqrt(d_model), the factor rounded to the model's dtype as Hugging Face does.
    W_E itself stays unscaled, so a tied W_U reads the same matrix."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.scale = cfg.embed_scale

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        e = F.embedding(tokens, self.W_E)
        return e * torch.tensor(self.scale, dtype=e.dtype, device=e.device)


class ProjectedEmbed(Embed):
    """OPT-350m: tokens embed in d_embed, then W_project_in [d_embed, d_model] maps them into the stream."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.W_project_in = nn.Parameter(torch.empty(cfg.embed_width, cfg.d_model))

    def forward(self, tokens: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.linear(F.embedding(tokens, self.W_E), self.W_project_in.t())


def make_embed(cfg: ModelConfig) -> Embed:
    if cfg.d_embed is not None:
        return ProjectedEmbed(cfg)
    return ScaledEmbed(cfg) if cfg.embed_scale != 1.0 else Embed(cfg)


class PosEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))

    def forward(self, positions: Int[Tensor, "batch pos"]) -> Float[Tensor, "batch pos d_model"]:
        return F.embedding(positions, self.W_pos)


class _UnembedBias(nn.Module):
    """`b_U` always reads as a vector, as TransformerLens's unembedding always has one.

    Without a bias (`unembed_bias=False`) it reads as fresh zeros that refuse in-place writes (an
    inference tensor: a write would be lost), so `model.b_U[token]` works while the forward adds nothing
    and `state_dict`, the saved format, holds no b_U. `bias` is the real parameter, or None; assigning an `nn.Parameter` to `b_U`
    gives the model one.
    """

    d_vocab: int

    def _init_bias(self, cfg: ModelConfig) -> None:
        self.d_vocab = cfg.d_vocab
        # Registered under "b_U" (the state_dict key) even when None, so assigning a Parameter works.
        self._parameters["b_U"] = nn.Parameter(torch.zeros(cfg.d_vocab)) if cfg.unembed_bias else None

    def _reads(self) -> Tensor:  # a tensor whose dtype and device the logits take
        raise NotImplementedError

    @property
    def bias(self) -> Tensor | None:
        return self._parameters["b_U"]

    @property
    def b_U(self) -> Tensor:
        b = self._parameters["b_U"]
        if b is not None:
            return b
        like = self._reads()
        with torch.inference_mode():  # an inference tensor: any in-place write outside it raises
            return torch.zeros(self.d_vocab, dtype=like.dtype, device=like.device)


class Unembed(_UnembedBias):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.W_U = nn.Parameter(torch.empty(cfg.embed_width, cfg.d_vocab))
        self._init_bias(cfg)
        self.logit_cap = soft_cap(cfg.soft_caps.output_logits_soft_cap)

    def _reads(self) -> Tensor:
        return self.W_U

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        return self.logit_cap(F.linear(x, self.W_U.t(), self.bias))


class TiedUnembed(_UnembedBias):
    """W_U = W_E.T, read from the embedding at call time so the two can never drift apart."""

    def __init__(self, cfg: ModelConfig, embed: Embed) -> None:
        super().__init__()
        self.__dict__["_embed"] = (
            embed  # a reference, not a submodule: W_E must not appear twice in state_dict
        )
        self._init_bias(cfg)
        self.logit_cap = soft_cap(cfg.soft_caps.output_logits_soft_cap)

    def _reads(self) -> Tensor:
        return self._embed.W_E

    @property
    def W_U(self) -> Tensor:
        return self._embed.W_E.t()

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        # .to: when the model is placed on several devices, W_E stays on the embedding's (interp.loading.placement)
        return self.logit_cap(F.linear(x, self._embed.W_E.to(x.device), self.bias))


class ProjectedUnembed(nn.Module):
    """OPT-350m: W_project_out [d_model, d_embed] leaves the stream, then the vocabulary matrix reads it.

    `W_U` is the product, [d_model, d_vocab], so direct logit attribution sees one matrix as usual."""

    def __init__(self, cfg: ModelConfig, vocab: Unembed | TiedUnembed) -> None:
        super().__init__()
        self.W_project_out = nn.Parameter(torch.empty(cfg.d_model, cfg.embed_width))
        self.vocab = vocab

    @property
    def W_U(self) -> Tensor:
        return self.W_project_out @ self.vocab.W_U

    @property
    def b_U(self) -> Tensor:
        return self.vocab.b_U

    @property
    def bias(self) -> Tensor | None:
        return self.vocab.bias

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_vocab"]:
        return self.vocab(F.linear(x, self.W_project_out.t()))


def make_unembed(cfg: ModelConfig, embed: Embed) -> nn.Module:
    vocab = TiedUnembed(cfg, embed) if cfg.tie_embeddings else Unembed(cfg)
    return vocab if cfg.d_embed is None else ProjectedUnembed(cfg, vocab)
