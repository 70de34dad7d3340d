"""Tiny random-weight Hugging Face models, built in the test and saved to a temp dir (no download)."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

VOCAB = 96


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial norms and biases too, so a mapping that drops one cannot pass by accident."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = (
                1.0
                if name.endswith(
                    ("ln_1.weight", "ln_2.weight", "ln_f.weight", "layernorm.weight", "norm.weight")
                )
                else 0.0
            )
            p.copy_(base + 0.15 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _llama_cfg(**kw) -> dict:
    base = dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=6,
                vocab_size=VOCAB, max_position_embeddings=64, tie_word_embeddings=False,
                attn_implementation="eager")  # fmt: skip
    return base | kw


HF_FACTORIES = {
    "gpt2": lambda: GPT2LMHeadModel(
        GPT2Config(
            n_layer=3, n_head=4, n_embd=32, n_positions=64, vocab_size=VOCAB, attn_implementation="eager"
        )
    ),
    "gpt2-untied": lambda: GPT2LMHeadModel(
        GPT2Config(
            n_layer=2,
            n_head=4,
            n_embd=32,
            n_positions=64,
            vocab_size=VOCAB,
            tie_word_embeddings=False,
            attn_implementation="eager",
        )  # fmt: skip
    ),
    "llama-mha": lambda: LlamaForCausalLM(LlamaConfig(**_llama_cfg(num_key_value_heads=6))),
    "llama-gqa": lambda: LlamaForCausalLM(
        LlamaConfig(**_llama_cfg(num_key_value_heads=2, rope_theta=500000.0))
    ),
    "llama-mqa": lambda: LlamaForCausalLM(
        LlamaConfig(**_llama_cfg(num_key_value_heads=1, tie_word_embeddings=True))
    ),
    "qwen2-bias": lambda: Qwen2ForCausalLM(Qwen2Config(**_llama_cfg(num_key_value_heads=2, rope_theta=1e6))),
    "mistral-window": lambda: MistralForCausalLM(
        MistralConfig(**_llama_cfg(num_key_value_heads=2, sliding_window=4))
    ),
}


def make_hf(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return _randomize(HF_FACTORIES[kind](), seed)


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory):
    """Save each tiny HF model once per session; returns kind -> folder."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            path = tmp_path_factory.mktemp(kind)
            make_hf(kind).save_pretrained(path)
            cache[kind] = path
        return cache[kind]

    return get


@pytest.fixture
def tokens():
    return torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(1))


# Many tiny ops: on a 2-core machine shared with other work, one intra-op thread is several times faster.
torch.set_num_threads(1)
