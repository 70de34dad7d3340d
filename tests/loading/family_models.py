"""Tiny random-weight Hugging Face models of every supported family, with odd shapes and every variant flag.

Built in the test (no download): grouped-query heads, untied embeddings, head_dim != d_model / n_heads,
partial rotary, soft-caps set small enough to bite, windows shorter than the probe, non-trivial norms.
"""

from __future__ import annotations

import re

import torch
import transformers as tr

VOCAB = 96
_NORM = re.compile(r".*(norm|ln_\d|ln_f|layernorm)[^.]*\.weight$")


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random; norm weights around 1 (Gemma stores w in (1 + w): around 0 there)."""
    gen = torch.Generator().manual_seed(seed)
    norm_base = 0.0 if type(model).__name__.startswith("Gemma") else 1.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = norm_base if _NORM.match(name) else 0.0
            p.copy_(base + 0.15 * torch.randn(p.shape, generator=gen))
    return model.eval()


def _decoder(**kw) -> dict:
    """LLaMA-style shapes: 6 query heads on 2 kv heads, head_dim 12 (not 48 / 6), 3 layers, untied."""
    base = dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=6,
                num_key_value_heads=2, head_dim=12, vocab_size=VOCAB, max_position_embeddings=64,
                tie_word_embeddings=False, attn_implementation="eager")  # fmt: skip
    return base | kw


def _no_head_dim(**kw) -> dict:
    """For configs that derive head_dim (48 / 6 = 8) and take no head_dim argument."""
    return {k: v for k, v in _decoder(**kw).items() if k != "head_dim"}


def _gemma3_text(**kw) -> dict:
    return _decoder(
        num_hidden_layers=4, query_pre_attn_scalar=20, sliding_window=4, attn_logit_softcapping=3.0,
        final_logit_softcapping=5.0, layer_types=["sliding_attention", "full_attention"] * 2,
        rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e5},
                         "sliding_attention": {"rope_type": "default", "rope_theta": 1e3}},
    ) | kw  # fmt: skip


def _gemma3_multimodal() -> torch.nn.Module:
    vision = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  image_size=28, patch_size=14)  # fmt: skip
    text = {k: v for k, v in _gemma3_text().items() if k != "attn_implementation"}
    cfg = tr.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=95,
                          tie_word_embeddings=False, attn_implementation="eager")  # fmt: skip
    return tr.Gemma3ForConditionalGeneration(cfg)


_LONGROPE = dict(rope_type="longrope", rope_theta=1e4, partial_rotary_factor=0.5,
                 short_factor=[1.0, 1.3], long_factor=[1.5, 4.0])  # fmt: skip

FACTORIES = {
    "llama3": lambda: tr.LlamaForCausalLM(
        tr.LlamaConfig(
            **_decoder(
                rope_parameters=dict(
                    rope_type="llama3",
                    rope_theta=5e5,
                    factor=8.0,
                    low_freq_factor=1.0,
                    high_freq_factor=4.0,
                    original_max_position_embeddings=16,
                )
            )
        )
    ),  # fmt: skip
    "llama-linear": lambda: tr.LlamaForCausalLM(
        tr.LlamaConfig(**_decoder(rope_parameters=dict(rope_type="linear", rope_theta=1e4, factor=4.0)))
    ),
    "llama-dynamic": lambda: tr.LlamaForCausalLM(
        tr.LlamaConfig(
            **_decoder(
                max_position_embeddings=8,
                rope_parameters=dict(rope_type="dynamic", rope_theta=1e4, factor=4.0),
            )
        )
    ),  # fmt: skip
    "llama-yarn": lambda: tr.LlamaForCausalLM(
        tr.LlamaConfig(
            **_decoder(
                rope_parameters=dict(
                    rope_type="yarn", rope_theta=1e4, factor=4.0, original_max_position_embeddings=16
                )
            )
        )
    ),  # fmt: skip
    "qwen3": lambda: tr.Qwen3ForCausalLM(tr.Qwen3Config(**_decoder())),
    "gemma": lambda: tr.GemmaForCausalLM(tr.GemmaConfig(**_decoder(hidden_activation="gelu_pytorch_tanh"))),
    "gemma2": lambda: tr.Gemma2ForCausalLM(
        tr.Gemma2Config(
            **_decoder(
                num_hidden_layers=4,
                query_pre_attn_scalar=20,
                sliding_window=4,
                attn_logit_softcapping=3.0,
                final_logit_softcapping=5.0,
            )
        )
    ),  # fmt: skip
    "gemma3": lambda: tr.Gemma3ForCausalLM(tr.Gemma3TextConfig(**_gemma3_text())),
    "gemma3-multimodal": _gemma3_multimodal,
    "olmo2": lambda: tr.Olmo2ForCausalLM(tr.Olmo2Config(**_no_head_dim())),
    "phi3": lambda: tr.Phi3ForCausalLM(
        tr.Phi3Config(
            **_no_head_dim(
                max_position_embeddings=32,
                original_max_position_embeddings=8,
                rope_parameters=_LONGROPE,
                pad_token_id=0,
            )
        )
    ),  # fmt: skip
    "neox": lambda: tr.GPTNeoXForCausalLM(
        tr.GPTNeoXConfig(
            hidden_size=64,
            intermediate_size=80,
            num_hidden_layers=3,
            num_attention_heads=4,
            vocab_size=VOCAB,
            max_position_embeddings=64,
            rotary_pct=0.25,
            use_parallel_residual=True,
            tie_word_embeddings=False,
            attn_implementation="eager",
        )
    ),  # fmt: skip
    "neox-sequential": lambda: tr.GPTNeoXForCausalLM(
        tr.GPTNeoXConfig(
            hidden_size=48,
            intermediate_size=80,
            num_hidden_layers=2,
            num_attention_heads=4,
            vocab_size=VOCAB,
            max_position_embeddings=64,
            rotary_pct=0.5,
            use_parallel_residual=False,
            attn_implementation="eager",
        )
    ),  # fmt: skip
    "gptj": lambda: tr.GPTJForCausalLM(
        tr.GPTJConfig(
            n_embd=48,
            n_layer=3,
            n_head=4,
            n_inner=80,
            rotary_dim=4,
            n_positions=64,
            vocab_size=VOCAB,
            attn_implementation="eager",
        )
    ),  # fmt: skip
    "opt": lambda: tr.OPTForCausalLM(
        tr.OPTConfig(
            hidden_size=48,
            ffn_dim=80,
            num_hidden_layers=3,
            num_attention_heads=4,
            vocab_size=VOCAB,
            max_position_embeddings=64,
            word_embed_proj_dim=48,
            attn_implementation="eager",
        )
    ),  # fmt: skip
    "opt-postln": lambda: tr.OPTForCausalLM(
        tr.OPTConfig(
            hidden_size=48,
            ffn_dim=80,
            num_hidden_layers=3,
            num_attention_heads=4,
            vocab_size=VOCAB,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
            do_layer_norm_before=False,
            attn_implementation="eager",
        )
    ),  # fmt: skip
}


def make(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return randomize(FACTORIES[kind](), seed)
