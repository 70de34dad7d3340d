"""Length-dependent RoPE (dynamic NTK, LongRoPE) against a FRESH Hugging Face model per length.

HF's dynamic RoPE keeps the longest length it has seen; interp's is stateless, so each length is compared
with a model that has seen only that length.
"""

from __future__ import annotations

import pytest
import torch
from family_models import VOCAB, make

import interp

# llama-dynamic: max_position_embeddings 8, factor 4; phi3: LongRoPE, original length 8.
CASES = [("llama-dynamic", n) for n in (5, 8, 9, 17, 32)] + [("phi3", n) for n in (6, 8, 9, 20)]


@pytest.mark.parametrize("kind, n_pos", CASES)
def test_each_length_matches_a_fresh_model(kind, n_pos):
    ours = interp.load(make(kind))
    tokens = torch.randint(0, VOCAB, (2, n_pos), generator=torch.Generator().manual_seed(n_pos))
    with torch.no_grad():
        ref = make(kind)(tokens).logits  # a fresh model: no state from earlier lengths
    torch.testing.assert_close(ours(tokens), ref, atol=1e-5, rtol=0)
    # Stateless: a longer run in between changes nothing.
    ours(torch.zeros(1, ours.cfg.n_ctx, dtype=torch.long))
    torch.testing.assert_close(ours(tokens), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind, short, long", [("llama-dynamic", 6, 20), ("phi3", 6, 20)])
def test_scaling_switches_with_length(kind, short, long):
    """Past the original length the frequencies change: the first positions' logits differ between a
    short and a long run (with default RoPE they would be identical under the causal mask)."""
    ours = interp.load(make(kind))
    tokens = torch.randint(0, VOCAB, (1, long), generator=torch.Generator().manual_seed(0))
    diff = (ours(tokens[:, :short]) - ours(tokens)[:, :short]).abs().max()
    assert diff > 1e-3
