"""`SAE`: a sparse dictionary over one hook point, written as SAELens defines each architecture.

    encode:  x → (normalise) → x - b_dec (SAEs with apply_b_dec_to_input) → x W_enc + b_enc → nonlinearity
    decode:  acts W_dec + b_dec → (undo the normalisation)
    forward: decode(encode(x)) (+ x W_skip for skip transcoders) (+ the error term x - recons when asked)

The nonlinearity (ReLU, TopK, JumpReLU, gated) and the input normalisation are chosen once, at construction.
Every intermediate is a hook point named as SAELens names it (`hook_sae_acts_post`, ...), so when spliced
into a model the cache holds `{hook_name}.hook_sae_acts_post`.

Axis vocabulary: `... d_in` is the host activation (flattened heads for hook_z SAEs), `... d_sae` the latents.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

import torch
from jaxtyping import Float
from torch import Tensor, nn

from interp.hooks import HookedRootModule, HookPoint
from interp.sae.config import SAEConfig

# The per-call statistics of a run-time normalisation, kept per thread / task (encode → decode).
_NORM_STATE: ContextVar[tuple[Tensor, Tensor] | None] = ContextVar("sae_norm_state", default=None)


class ReLU(nn.Module):
    def forward(self, pre: Tensor, sae: SAE) -> Tensor:
        return pre.relu()


class TopK(nn.Module):
    """Keeps the k largest pre-activations per token (then ReLU), zeroing the rest, as SAELens' TopK."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, pre: Tensor, sae: SAE) -> Tensor:
        values, indices = pre.topk(self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, indices, values.relu())


class JumpReLU(nn.Module):
    """ReLU, with every latent whose pre-activation is at or below its threshold set to 0."""

    def forward(self, pre: Tensor, sae: SAE) -> Tensor:
        return pre.relu() * (pre > sae.threshold).to(pre.dtype)


class Normalizer(nn.Module):
    """Identity ("none", and "expected_average_only_in", which publication folds into the weights)."""

    def into(self, x: Tensor) -> Tensor:
        return x

    def out(self, x: Tensor) -> Tensor:
        return x


class ConstantNormRescale(Normalizer):
    """Scale each token to norm sqrt(d_in), and back after decoding."""

    def into(self, x: Tensor) -> Tensor:
        coeff = (x.shape[-1] ** 0.5) / x.norm(dim=-1, keepdim=True)
        _NORM_STATE.set((coeff, torch.zeros_like(coeff)))
        return x * coeff

    def out(self, x: Tensor) -> Tensor:
        coeff, _ = _state()
        return x / coeff


class LayerNormRescale(Normalizer):
    """Centre and scale each token (SAELens' "layer_norm"), and restore after decoding."""

    def into(self, x: Tensor, eps: float = 1e-5) -> Tensor:
        mu = x.mean(dim=-1, keepdim=True)
        x = x - mu
        std = x.std(dim=-1, keepdim=True)
        _NORM_STATE.set((std, mu))
        return x / (std + eps)

    def out(self, x: Tensor) -> Tensor:
        std, mu = _state()
        return x * std + mu


def _state() -> tuple[Tensor, Tensor]:
    state = _NORM_STATE.get()
    if state is None:
        raise RuntimeError(
            "decode() of a normalising SAE needs the statistics of an encode() in this context"
        )
    return state


def _hooked(point: HookPoint, x: Tensor) -> Tensor:
    return point(x)


def _bare(point: HookPoint, x: Tensor) -> Tensor:
    return x


NORMALIZERS: dict[str, Callable[[], Normalizer]] = {
    "none": Normalizer,
    "expected_average_only_in": Normalizer,
    "constant_norm_rescale": ConstantNormRescale,
    "layer_norm": LayerNormRescale,
}


class SAE(HookedRootModule):
    def __init__(self, cfg: SAEConfig, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.cfg = cfg
        d_in, d_sae, d_out = cfg.d_in, cfg.d_sae, cfg.out_dim
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae, dtype=dtype))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_out, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(d_out, dtype=dtype))
        arch = cfg.architecture
        if arch == "gated":
            self.b_gate = nn.Parameter(torch.zeros(d_sae, dtype=dtype))
            self.b_mag = nn.Parameter(torch.zeros(d_sae, dtype=dtype))
            self.r_mag = nn.Parameter(torch.zeros(d_sae, dtype=dtype))
        else:
            self.b_enc = nn.Parameter(torch.zeros(d_sae, dtype=dtype))
        if arch in ("jumprelu", "jumprelu_transcoder"):
            self.threshold = nn.Parameter(torch.zeros(d_sae, dtype=dtype))
        if arch == "skip_transcoder":
            self.W_skip = nn.Parameter(torch.zeros(d_out, d_in, dtype=dtype))
        self.activation = (
            TopK(cfg.k) if arch == "topk" else JumpReLU() if hasattr(self, "threshold") else ReLU()
        )
        self.norm = NORMALIZERS[cfg.normalize_activations]()
        # Transcoders write elsewhere, so b_dec (an output-space bias) is never subtracted from their input.
        self._b_dec_in = cfg.apply_b_dec_to_input and not cfg.is_transcoder
        self._pre = self._pre_gated if arch == "gated" else self._pre_linear
        self.hook_sae_input = HookPoint()
        self.hook_sae_acts_pre = HookPoint()
        self.hook_sae_acts_post = HookPoint()
        self.hook_sae_recons = HookPoint()
        self.hook_sae_error = HookPoint()
        self.hook_sae_output = HookPoint()
        self.setup_hooks()

    # ---- the dictionary ------------------------------------------------------------------------------------
    def encode(self, x: Float[Tensor, "... d_in"]) -> Float[Tensor, "... d_sae"]:
        """Latent activations of the host activation `x` (already flattened for hook_z SAEs)."""
        return self._encode(x, hooked=True)

    def decode(self, acts: Float[Tensor, "... d_sae"]) -> Float[Tensor, "... d_out"]:
        return self._decode(acts, hooked=True)

    def forward(
        self, x: Float[Tensor, "... d_in"], use_error_term: bool = False
    ) -> Float[Tensor, "... d_out"]:
        """The reconstruction; with `use_error_term`, plus (x - reconstruction), so the output is exactly x.

        The error term is computed from a second pass with no hook on the SAE's own points (as SAELens does),
        so an edit of a latent changes the output by exactly that latent's decoder contribution. A
        transcoder's target lives at another hook, so `splice` adds its error term there."""
        out = self._reconstruct(x, hooked=True)
        if use_error_term and not self.cfg.is_transcoder:
            with torch.no_grad():
                clean = self._reconstruct(x, hooked=False)
            out = out + self.hook_sae_error((x - clean).to(out.dtype))
        return self.hook_sae_output(out)

    def _reconstruct(self, x: Tensor, hooked: bool) -> Tensor:
        out = self._decode(self._encode(x, hooked), hooked)
        if self.cfg.architecture == "skip_transcoder":
            out = out + x.to(self.W_skip.dtype) @ self.W_skip.T
        return out

    def _encode(self, x: Tensor, hooked: bool) -> Tensor:
        hook = _hooked if hooked else _bare
        sae_in = self.norm.into(hook(self.hook_sae_input, x.to(self.W_enc.dtype)))
        if self._b_dec_in:
            sae_in = sae_in - self.b_dec
        pre = hook(self.hook_sae_acts_pre, self._pre(sae_in))
        if self.cfg.rescale_acts_by_decoder_norm:
            pre = pre * self.W_dec.norm(dim=-1)
        return hook(self.hook_sae_acts_post, self._post(pre, sae_in))

    def _decode(self, acts: Tensor, hooked: bool) -> Tensor:
        hook = _hooked if hooked else _bare
        if self.cfg.rescale_acts_by_decoder_norm:
            acts = acts / self.W_dec.norm(dim=-1)
        return self.norm.out(hook(self.hook_sae_recons, acts @ self.W_dec + self.b_dec))

    def _pre_linear(self, sae_in: Tensor) -> Tensor:
        return sae_in @ self.W_enc + self.b_enc

    def _pre_gated(self, sae_in: Tensor) -> Tensor:
        """The magnitude path; the gate is applied in `_post` (SAELens' GatedSAE)."""
        return sae_in @ (self.W_enc * self.r_mag.exp()) + self.b_mag

    def _post(self, pre: Tensor, sae_in: Tensor) -> Tensor:
        acts = self.activation(pre, self)
        if self.cfg.architecture == "gated":
            acts = acts * (sae_in @ self.W_enc + self.b_gate > 0).to(acts.dtype)
        return acts

    # ---- shapes at the host hook ---------------------------------------------------------------------------
    def flatten(self, act: Tensor) -> Tensor:
        """Host activation → `... d_in` (hook_z SAEs read all heads at once)."""
        return act.flatten(-2) if self.cfg.reshape_activations == "hook_z" else act

    def unflatten(self, out: Tensor, like: Tensor) -> Tensor:
        return out.view(like.shape) if self.cfg.reshape_activations == "hook_z" else out

    def extra_repr(self) -> str:
        c = self.cfg
        return f"{c.architecture}, {c.hook_name}{' -> ' + c.write_hook if c.is_transcoder else ''}, d_in={c.d_in}, d_sae={c.d_sae}"
