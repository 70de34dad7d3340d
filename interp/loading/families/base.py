"""`Family`: what one Hugging Face family module declares, and the shape every converter has.

A family is data plus two functions:
- `config(hf_config, ck) -> ModelConfig` reads the HF config (and may look at which tensors exist);
- `weights(hf_config, cfg, ck)` yields `(interp state-dict key, tensor)` pairs one at a time, taking every
  HF tensor through `ck.take`, so the loader can stream them into the model without holding a second copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from interp.config import ModelConfig
from interp.loading.checkpoint import Checkpoint

ConfigFn = Callable[[Any, Checkpoint], ModelConfig]
WeightsFn = Callable[[Any, ModelConfig, Checkpoint], Iterator[tuple[str, Tensor]]]


@dataclass(frozen=True)
class Family:
    architectures: tuple[str, ...]  # HF class names, e.g. ("LlamaForCausalLM",)
    model_types: tuple[str, ...]  # HF config.model_type values, for configs without `architectures`
    prefix: str  # prefix of the decoder's weights in the checkpoint, e.g. "model."
    config: ConfigFn
    weights: WeightsFn
    # BOS policy: True/False when the family requires one; None = prepend BOS iff the tokenizer has one
    prepend_bos: bool | None = None
