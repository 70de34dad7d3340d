"""Our cached resid_pre, pattern and z equal TransformerLens 4.3's TransformerBridge on the same HF weights."""

from __future__ import annotations

import copy

import pytest
import torch
from family_models import VOCAB, make
from transformer_lens.model_bridge.sources import build_bridge_from_module

import interp

ARCH = {"neox": "GPTNeoXForCausalLM", "gemma2": "Gemma2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
NAMES = ["hook_resid_pre", "attn.hook_pattern", "attn.hook_z"]


@pytest.mark.parametrize("kind", list(ARCH))
def test_cache_matches_transformer_bridge(kind):
    tokens = torch.randint(0, VOCAB, (2, 11), generator=torch.Generator().manual_seed(1))
    hf = make(kind)
    ours = interp.load(hf)
    bridge = build_bridge_from_module(copy.deepcopy(hf), ARCH[kind], hf_config=hf.config)  # rewires in place
    ref_logits, ref = bridge.run_with_cache(tokens)
    logits, cache = ours.run_with_cache(tokens)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=0)
    for layer in range(ours.cfg.n_layers):
        for name in NAMES:
            key = f"blocks.{layer}.{name}"
            torch.testing.assert_close(cache[key], ref[key], atol=1e-5, rtol=0, msg=key)
