"""`SAEConfig`: one frozen description of a sparse dictionary (an SAE, a transcoder or a skip transcoder).

The field names follow SAELens 6 (`cfg.json`), so its folders load without a translation table beyond the
pre-6.0 renames; `formats.py` reads and writes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Architecture = Literal[
    "standard", "topk", "jumprelu", "gated", "transcoder", "skip_transcoder", "jumprelu_transcoder"
]
Normalize = Literal["none", "expected_average_only_in", "constant_norm_rescale", "layer_norm"]
ARCHITECTURES: tuple[str, ...] = Architecture.__args__
TRANSCODERS = ("transcoder", "skip_transcoder", "jumprelu_transcoder")


@dataclass(frozen=True)
class SAEConfig:
    architecture: Architecture  # encoder nonlinearity and read/write shape
    d_in: int  # width of the activation read at `hook_name`
    d_sae: int  # number of latents
    hook_name: str  # where the dictionary reads (and, for an SAE, writes)
    d_out: int | None = None  # width written (transcoders: at `hook_name_out`); None = d_in
    hook_name_out: str | None = None  # transcoders: where the reconstruction is written
    hook_head_index: int | None = None  # SAELens: read one head of a per-head hook (unsupported: None only)
    apply_b_dec_to_input: bool = True  # subtract b_dec from the input before encoding (SAEs only)
    # SAELens' input normalisation; "expected_average_only_in" is folded into the weights at publication,
    # so at inference it is the identity, exactly as in SAELens' load_from_disk.
    normalize_activations: Normalize = "none"
    k: int | None = None  # topk: latents kept per token
    rescale_acts_by_decoder_norm: bool = False  # topk: rank by act * |W_dec row|
    reshape_activations: Literal["none", "hook_z"] = "none"  # hook_z SAEs read [.., head, d_head] flattened
    # kwargs the host model was loaded with (SAELens metadata), e.g. {"center_writing_weights": True}
    model_from_pretrained_kwargs: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    model_name: str | None = None  # the host model it was trained on (informational)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown SAE architecture {self.architecture!r}; known: {', '.join(ARCHITECTURES)}"
            )
        for name in ("d_in", "d_sae"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"SAEConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if self.architecture == "topk" and (self.k is None or not 0 < self.k <= self.d_sae):
            raise ValueError(f"a topk SAE needs 0 < k <= d_sae={self.d_sae}, got k={self.k}")
        if self.is_transcoder and not self.hook_name_out:
            raise ValueError(f"a {self.architecture} needs hook_name_out (where it writes)")
        if not self.is_transcoder and self.hook_name_out not in (None, self.hook_name):
            raise ValueError(f"an SAE reads and writes one hook; got hook_name_out={self.hook_name_out!r}")
        if self.normalize_activations not in Normalize.__args__:
            raise ValueError(
                f"normalize_activations={self.normalize_activations!r}; allowed: {Normalize.__args__}"
            )
        if self.d_out is None:  # one spelling per config: an SAE writes what it reads
            object.__setattr__(self, "d_out", self.d_in)
        if self.hook_head_index is not None:
            raise ValueError("SAEs on a single head (hook_head_index) are not supported; use hook_z SAEs")

    @property
    def is_transcoder(self) -> bool:
        return self.architecture in TRANSCODERS

    @property
    def out_dim(self) -> int:
        return self.d_out if self.d_out is not None else self.d_in

    @property
    def write_hook(self) -> str:
        return self.hook_name_out or self.hook_name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> SAEConfig:
        return dataclasses.replace(self, **changes)
