"""Qwen3 (`Qwen3ForCausalLM`): LLaMA's layout plus a per-head RMSNorm on q and k (QK-norm)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from torch import Tensor

from interp.config import ModelConfig, NormLayout
from interp.loading.checkpoint import Checkpoint
from interp.loading.families import llama
from interp.loading.families.base import Family

_llama_config = llama.llama_config(llama._attention_bias, llama._attention_bias)


def config(hf: Any, ck: Checkpoint) -> ModelConfig:
    return dataclasses.replace(_llama_config(hf, ck), norms=NormLayout(qk_norm="head"))


def weights(hf: Any, cfg: ModelConfig, ck: Checkpoint) -> Iterator[tuple[str, Tensor]]:
    yield from llama.weights(hf, cfg, ck)
    for i in range(cfg.n_layers):
        for name in ("q_norm", "k_norm"):
            yield f"blocks.{i}.attn.{name}.w", ck.take(f"layers.{i}.self_attn.{name}.weight", (cfg.d_head,))


# Like Qwen2, Qwen3's tokenizer has no BOS token: the loader's default (BOS iff the tokenizer has one) holds.
QWEN3 = Family(("Qwen3ForCausalLM",), ("qwen3",), "model.", config, weights)
