"""Ground-truth scoring on the embedded world: F1 by hand, a random dictionary scores like the null, a planted
detector scores near 1, and zeroing a latent changes only what it should."""

from __future__ import annotations

import random

import pytest
import torch

import interp
from interp.sae import SAE, SAEConfig
from interp.sae.evaluate import _f1, evaluate, positions, tiny_facts_items


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load("tiny-facts")


@pytest.fixture(scope="module")
def items():
    every = tiny_facts_items()
    return random.Random(0).sample(every, 240)


def test_f1_by_hand() -> None:
    fired = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0]], dtype=torch.bool)
    labels = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    p, r, f = _f1(fired, labels)
    assert p.tolist() == pytest.approx([2 / 3, 1 / 2]) and r.tolist() == pytest.approx([1.0, 1 / 2])
    assert f.tolist() == pytest.approx([0.8, 0.5])


def test_subject_positions_are_the_last_subject_token(model, items) -> None:
    tokens, mask, pos = positions(model, items[:20], "subject")
    for i, it in enumerate(items[:20]):
        pieces = model.to_str_tokens(tokens[i, : int(pos[i]) + 1])
        assert "".join(pieces).endswith(it.subject), (pieces, it.subject)


def test_random_dictionary_scores_like_the_null(model, items) -> None:
    """A random SAE's "ground truth" F1 must be near chance: here, near a second random SAE's best-of-N."""
    sae = SAE(SAEConfig("topk", d_in=model.cfg.d_model, d_sae=128, hook_name="blocks.0.hook_resid_post", k=8))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        sae.W_enc.normal_(generator=gen)
        sae.W_dec.normal_(generator=gen)
    gt = evaluate(
        model, sae, items, null_seeds=2, max_ablations=3, attributes=["continent", "job", "language"]
    )
    assert abs(gt.summary["mean_f1"] - gt.summary["mean_null_f1"]) < 0.1, gt.summary
    assert gt.summary["share_f1_ge_0.9"] < 0.2


def test_planted_detectors_score_high(model, items) -> None:
    """Latents built as mean-difference detectors of `continent` values must find their value."""
    tokens, mask, pos = positions(model, items, "subject")
    _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter="blocks.1.hook_resid_post")
    x = cache["blocks.1.hook_resid_post"][torch.arange(len(items)), pos]
    conts = sorted({it.values["continent"] for it in items if "continent" in it.values})
    sae = SAE(SAEConfig("standard", d_in=model.cfg.d_model, d_sae=len(conts), hook_name="blocks.1.hook_resid_post",
                        apply_b_dec_to_input=False))  # fmt: skip
    with torch.no_grad():
        for j, c in enumerate(conts):
            lab = torch.tensor([it.values.get("continent") == c for it in items])
            w = x[lab].mean(0) - x[~lab].mean(0)
            score = x @ w
            sae.W_enc[:, j] = w
            # threshold halfway between the classes' mean scores
            sae.b_enc[j] = -(score[lab].mean() + score[~lab].mean()) / 2
            sae.W_dec[j] = w / w.norm()
    gt = evaluate(model, sae, items, null_seeds=2, max_ablations=len(conts), attributes=["continent"])
    rows = gt.table[gt.table.attribute == "continent"].set_index("value")
    for j, c in enumerate(conts):
        assert rows.loc[c, "latent"] == j
    assert rows.f1.mean() > rows.null_f1.mean() + 0.2, rows[["f1", "null_f1"]]
    # Zeroing a latent spliced with the error term moves P(answer) only through that latent's decoder row.
    assert rows.drop_pos.notna().all() and rows.drop_neg.notna().all()
    assert set(gt.table.attribute) == {"continent"}
