"""Tiny random models (and a word-level tokenizer) shared by the analysis tests; built offline in-process."""

from __future__ import annotations

import functools

import torch

from interp import HookedTransformer, ModelConfig

# Tiny models gain nothing from intra-op threads, and on a shared 2-core machine OpenMP's waiting threads
# make every small op cost a scheduler slice (~8 ms): one thread runs these tests ~20x faster.

WORDS = ["<bos>", "<eos>", "<pad>", "<unk>", "The", "Ġcapital", "Ġof", "ĠFrance", "Ġis", "ĠParis", "ĠRome",
         "ĠItaly", "ĠEiffel", "ĠTower", "Ġin", "Ġthe", "Ġcity", "Ġlove", "Ġhate", "ĠI", "Ġyou", "Ġa", "."]  # fmt: skip


def word_tokenizer():
    """A byte-level word tokenizer over WORDS, so to_str_tokens gives " capital"-style pieces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )


def build(
    seed: int = 0, tokenizer: bool = False, dtype: torch.dtype = torch.float32, **overrides
) -> HookedTransformer:
    """A 3-layer model with weights large enough (and non-trivial norms and biases) to have real effects."""
    cfg = dict(d_model=32, n_layers=3, n_heads=4, d_head=8, d_mlp=48, d_vocab=len(WORDS) + 9, n_ctx=24)
    model = HookedTransformer(ModelConfig(**(cfg | overrides)), word_tokenizer() if tokenizer else None)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                base = 1.0 if name.endswith(".w") else 0.0  # norm weights near 1, biases near 0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return model.to(dtype).eval()


@functools.cache
def gpt2_like() -> HookedTransformer:
    return build(0, tokenizer=True)


@functools.cache
def llama_like() -> HookedTransformer:
    """RMSNorm, rotary, SwiGLU, grouped-query attention (2 kv heads), no biases."""
    return build(1, norm="rmsnorm", positional="rotary", gated_mlp=True, act_fn="silu", n_kv_heads=2,
                 qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=False)  # fmt: skip


def token_pair(
    model: HookedTransformer, batch: int = 2, n_pos: int = 6, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean and corrupted token ids that differ in two positions."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, model.cfg.d_vocab, (batch, n_pos), generator=gen)
    corrupted = clean.clone()
    corrupted[:, 1] = (clean[:, 1] + 5) % model.cfg.d_vocab
    corrupted[:, 3] = (clean[:, 3] + 7) % model.cfg.d_vocab
    return clean, corrupted
