"""One small module per Hugging Face family; this registry maps an architecture name to its converter.

A converter takes the HF config and a `Checkpoint` and returns interp's `ModelConfig` and state dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from interp.config import ModelConfig
from interp.loading.checkpoint import Checkpoint
from interp.loading.families import gpt2, llama

Converter = Callable[[Any, Checkpoint], tuple[ModelConfig, dict[str, Tensor]]]

# architecture -> (converter, prefix of the decoder's weights in the checkpoint)
ARCHITECTURES: dict[str, tuple[Converter, str]] = {
    **{arch: (gpt2.convert, gpt2.PREFIX) for arch in gpt2.ARCHITECTURES},
    **{arch: (convert, llama.PREFIX) for arch, convert in llama.CONVERTERS.items()},
}
# model_type -> architecture, for configs that do not list `architectures`
BY_MODEL_TYPE = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}  # fmt: skip
