"""Shared by tests/compat: tiny HF models with a word tokenizer, and TransformerLens references on the same weights.

Runs in both environments: the main one (TransformerLens 4.3: `TransformerBridge`) and `.venv-saelens`
(TransformerLens 3.9: its `HookedTransformer`, the API TL 3 notebooks are written against).
"""

from __future__ import annotations

import copy
import functools
from importlib.metadata import version

import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

import interp

TL_VERSION = version("transformer-lens")
TL3 = TL_VERSION.startswith("3.")  # TL 4 has only the bridge

if TL3:  # TL 3's helpers live in transformer_lens.utils; TL 4 moved them to transformer_lens.utilities
    from transformer_lens.utils import get_act_name
    from transformer_lens.utils import test_prompt as tl_test_prompt
else:
    from transformer_lens.utilities import get_act_name
    from transformer_lens.utilities import test_prompt as tl_test_prompt

__all__ = ["TL3", "get_act_name", "gpt2", "hf_gpt2", "hf_llama_gqa", "llama", "tl3_model", "tl_reference",
           "tl_test_prompt", "word_tokenizer"]  # fmt: skip

# IOI / induction-style prompts need names; every word is one token (" John" style, as GPT-2's BPE).
WORDS = ["<|endoftext|>", "<pad>", "<unk>", "When", "Ġand", "ĠJohn", "ĠMary", "Ġwent", "Ġto", "Ġthe", "Ġstore",
         "Ġshops", "Ġgave", "Ġa", "Ġbag", "Ġbottle", "Ġof", "Ġmilk", "Ġdrink", ",", ".", "ĠThe", "Ġcat", "Ġsat",
         "Ġon", "Ġmat", "ĠTom", "ĠJames", "ĠClaire", "Ġcapital", "ĠFrance", "Ġis", "ĠParis", "ĠRome", "Ġdog",
         "Ġran", "ĠAfter", "ĠSally", "ĠBob", "Ġhouse", "Ġpark", "Ġball", "ĠThen"]  # fmt: skip


def word_tokenizer() -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<pad>",
        unk_token="<unk>",
    )  # fmt: skip


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", "norm.weight")) else 0.0
            p.copy_(base + 0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


def hf_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    """A 3-layer GPT-2 (tied embeddings) over WORDS, with non-trivial norms and biases."""
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=3, n_head=4, n_embd=32, n_positions=48, vocab_size=len(WORDS),
                     attn_implementation="eager", bos_token_id=0, eos_token_id=0)  # fmt: skip
    return _randomize(GPT2LMHeadModel(cfg), seed)


def hf_llama_gqa(seed: int = 1) -> LlamaForCausalLM:
    """RMSNorm, rotary, SwiGLU, 6 query heads sharing 2 kv heads, untied."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
                      num_key_value_heads=2, vocab_size=len(WORDS), max_position_embeddings=48,
                      tie_word_embeddings=False, attn_implementation="eager", bos_token_id=0, eos_token_id=0)  # fmt: skip
    return _randomize(LlamaForCausalLM(cfg), seed)


@functools.cache
def gpt2() -> interp.HookedTransformer:
    return interp.load(hf_gpt2(), tokenizer=word_tokenizer())


@functools.cache
def llama() -> interp.HookedTransformer:
    return interp.load(hf_llama_gqa(), tokenizer=word_tokenizer())


def tl_reference(hf: torch.nn.Module):
    """TransformerLens on the same weights, unprocessed: TL 3's HookedTransformer, else TL 4's bridge."""
    arch = type(hf).__name__
    if not TL3:
        from transformer_lens.model_bridge.sources import build_bridge_from_module

        bridge = build_bridge_from_module(copy.deepcopy(hf), arch, hf_config=hf.config)  # rewires in place
        return bridge.eval()
    return tl3_model(hf)


def tl3_config(hf: torch.nn.Module, **overrides):
    from transformer_lens import HookedTransformerConfig

    c = hf.config
    if type(hf).__name__ == "GPT2LMHeadModel":
        kw = dict(d_model=c.n_embd, n_layers=c.n_layer, n_heads=c.n_head, d_head=c.n_embd // c.n_head,
                  d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions, act_fn="gelu_new",
                  normalization_type="LN", eps=c.layer_norm_epsilon, original_architecture="GPT2LMHeadModel")  # fmt: skip
    else:
        kw = dict(d_model=c.hidden_size, n_layers=c.num_hidden_layers, n_heads=c.num_attention_heads,
                  d_head=c.hidden_size // c.num_attention_heads, d_mlp=c.intermediate_size, d_vocab=c.vocab_size,
                  n_ctx=c.max_position_embeddings, act_fn="silu", normalization_type="RMS", eps=c.rms_norm_eps,
                  positional_embedding_type="rotary", rotary_dim=c.hidden_size // c.num_attention_heads,
                  rotary_adjacent_pairs=False, rotary_base=getattr(c, "rope_theta", 10000.0),
                  n_key_value_heads=c.num_key_value_heads, gated_mlp=True, final_rms=True,
                  original_architecture="LlamaForCausalLM")  # fmt: skip
    return HookedTransformerConfig(**(kw | overrides))


def tl3_model(hf: torch.nn.Module, **process):
    """TL 3's HookedTransformer with TL's own weight conversion (and, with `process`, TL's processing)."""
    from transformer_lens import HookedTransformer
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights, convert_llama_weights

    cfg = tl3_config(hf)
    model = HookedTransformer(cfg)  # token ids only: TL 3 would re-load a tokenizer from the hub
    convert = (
        convert_gpt2_weights if cfg.original_architecture == "GPT2LMHeadModel" else convert_llama_weights
    )
    sd = convert(hf, cfg)
    flags = dict(fold_ln=False, center_writing_weights=False, center_unembed=False, fold_value_biases=False)
    model.load_and_process_state_dict(sd, **(flags | process))
    return model.eval()


def tokens_of(model: interp.HookedTransformer, *prompts: str) -> torch.Tensor:
    return model.to_tokens(list(prompts))
