"""Metrics on hand-made logits."""

from __future__ import annotations

import pytest
import torch

from interp.analysis import kl_div, log_prob, logit_diff, normalized, normalized_recovery, prob

LOGITS = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]])


def test_logit_diff_probability_and_log_probability():
    assert logit_diff(1, 0)(LOGITS).item() == pytest.approx(((2 - 1) + (-1 - 0.5)) / 2)
    assert logit_diff([1, 2], [0, 0], reduce=False)(LOGITS).tolist() == pytest.approx([1.0, 2.5])
    p = LOGITS.softmax(-1)
    assert prob(2)(LOGITS).item() == pytest.approx(p[:, 2].mean().item())
    assert log_prob([0, 2], reduce=False)(LOGITS).tolist() == pytest.approx(p[[0, 1], [0, 2]].log().tolist())
    # several read positions: [batch, k, d_vocab] with one token per example
    many = torch.stack([LOGITS, LOGITS.flip(0)], dim=1)
    assert prob([1, 2], reduce=False)(many).shape == (2, 2)
    with pytest.raises(ValueError, match="3 per-example tokens for logits with batch 2"):
        prob([0, 1, 2])(LOGITS)


def test_kl_divergence():
    assert kl_div(LOGITS)(LOGITS).item() == pytest.approx(0.0, abs=1e-7)
    other = torch.zeros_like(LOGITS)
    p = LOGITS.softmax(-1)
    expected = (p * (p.log() - other.log_softmax(-1))).sum(-1).mean()
    assert kl_div(LOGITS)(other).item() == pytest.approx(expected.item())


def test_normalised_recovery():
    assert normalized_recovery(2.0, clean=3.0, corrupted=1.0).item() == pytest.approx(0.5)
    wrapped = normalized(logit_diff(1, 0), clean=1.0, corrupted=-1.0)
    assert wrapped(LOGITS).item() == pytest.approx((-0.25 + 1) / 2)
    with pytest.raises(ValueError, match="clean and corrupted metrics are equal"):
        normalized(logit_diff(1, 0), clean=1.0, corrupted=1.0)
