"""Attention knockout against forwards with a hand-edited attention mask."""

from __future__ import annotations

import pytest
import torch
from analysis_helpers import gpt2_like, llama_like, token_pair

from interp.analysis import knockout, knockout_sweep


def hand_knockout(model, tokens, target, sources, layers, answer):
    """Block the edges by writing -inf into the attention scores by hand."""

    def block(scores, hook):
        scores = scores.clone()
        for s in sources:
            scores[:, :, target, s] = float("-inf")
        return scores

    hooks = [(f"blocks.{layer}.attn.hook_attn_scores", block) for layer in layers]
    with torch.no_grad():
        base = model(tokens)[:, target].softmax(-1)
        new = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, target].softmax(-1)
    rows = torch.arange(tokens.shape[0])
    return base[rows, answer], new[rows, answer]


@pytest.mark.parametrize("make", [gpt2_like, llama_like], ids=["gpt2", "llama-gqa"])
def test_sweep_matches_hand_edited_mask(make):
    model = make()
    tokens, _ = token_pair(model, batch=2, n_pos=7)
    sets = {"subject": [2, 3], "first": [0], "last": [6]}
    df = knockout_sweep(model, tokens, sets, window=2, max_rows=4)
    answer = model(tokens)[:, -1].argmax(-1)
    assert df.attrs["answer"] == answer.tolist()
    assert len(df) == 3 * model.cfg.n_layers
    for row in df.itertuples():
        layers = range(row.first_layer, row.last_layer + 1)
        p_base, p_new = hand_knockout(model, tokens, 6, sets[row.sources], layers, answer)
        assert row.p_base == pytest.approx(p_base.mean().item(), abs=1e-6)
        assert row.p_new == pytest.approx(p_new.mean().item(), abs=1e-6)
        assert row.relative_change == pytest.approx((p_new / p_base - 1).mean().item(), abs=1e-5)
    # window 2 around layer 1 is layers 0..1 (ROME's convention: [l - w//2, l + w - w//2))
    assert df[df.layer == 1][["first_layer", "last_layer"]].iloc[0].tolist() == [0, 1]


def test_single_knockout_with_target_and_answer():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=1, n_pos=6)
    got = knockout(model, tokens, sources=[1, 2], layers=[0, 2], read_pos=4, answer=7)
    p_base, p_new = hand_knockout(model, tokens, 4, [1, 2], [0, 2], torch.tensor([7]))
    assert got.p_base == pytest.approx(p_base.item(), abs=1e-6)
    assert got.p_new == pytest.approx(p_new.item(), abs=1e-6)
    assert got.relative_change == pytest.approx((p_new / p_base - 1).item(), abs=1e-5)


def test_invalid_edges_fail_early():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=1, n_pos=6)
    with pytest.raises(ValueError, match=r"positions \[5\] outside 0..3"):
        knockout_sweep(model, tokens, [1, 5], read_pos=3)
    with pytest.raises(ValueError, match="blocks every key of position 2"):
        knockout(model, tokens, [0, 1, 2], layers=[0], read_pos=2)
    with pytest.raises(ValueError, match="read_pos 9 out of range"):
        knockout(model, tokens, [0], layers=[0], read_pos=9)
    with pytest.raises(ValueError, match="layers must lie in 0..2"):
        knockout(model, tokens, [0], layers=[3])
    with pytest.raises(ValueError, match="is empty"):
        knockout_sweep(model, tokens, {"none": []})
