"""Ground-truth scoring on the embedded worlds (tiny-facts; tiny-facts-2 in English and in Chinese): F1 by
hand, a random dictionary scores like the null, a planted detector scores near 1, and zeroing a latent
changes only what it should."""

from __future__ import annotations

import random

import pytest
import torch

import interp
from interp.sae import SAE, SAEConfig
from interp.sae.evaluate import _f1, evaluate, positions, tiny_facts_2_items, tiny_facts_items, world_items

WORLDS = [("tiny-facts", "en"), ("tiny-facts-2", "en"), ("tiny-facts-2", "zh")]


@pytest.fixture(scope="module", params=WORLDS, ids=[f"{m}-{lang}" for m, lang in WORLDS])
def world(request) -> tuple[interp.HookedTransformer, list]:
    """(model, 240 of its world's trained fact items in one language)."""
    name, lang = request.param
    return interp.load(name), random.Random(0).sample(world_items(name, lang), 240)


@pytest.fixture(scope="module")
def model(world) -> interp.HookedTransformer:
    return world[0]


@pytest.fixture(scope="module")
def items(world) -> list:
    return world[1]


def test_tiny_facts_2_items_share_english_values_across_languages() -> None:
    en, zh = tiny_facts_2_items("en"), tiny_facts_2_items("zh")
    assert {it.prompt for it in tiny_facts_2_items(None)} == {it.prompt for it in en + zh}
    assert len(tiny_facts_2_items("en", split=None)) > len(en)  # held-out and unseen templates too
    france = [it for it in zh if it.prompt == "法国的首都是"]
    assert len(france) == 1 and france[0].subject == "法国" and france[0].answer == "巴黎"
    assert france[0].values == {"country": "France", "capital": "Paris", "language": "French", "continent": "Europe"}  # fmt: skip
    person = next(it for it in zh if "birth_country" in it.values)
    assert set(person.values) == {"person", "birth_country", "job", "sport"} and "·" in person.subject
    values = {
        lang: {(a, v) for it in its for a, v in it.values.items()} for lang, its in (("en", en), ("zh", zh))
    }
    assert values["en"] == values["zh"] and len(values["en"]) == 43 * 2 + 26 + 6 + 64 + 8 * 3  # fmt: skip
    assert world_items("tiny-facts") == tiny_facts_items()
    with pytest.raises(ValueError, match="English facts only"):
        world_items("tiny-facts", "zh")


def test_f1_by_hand() -> None:
    fired = torch.tensor([[1, 0], [1, 1], [0, 1], [1, 0]], dtype=torch.bool)
    labels = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    p, r, f = _f1(fired, labels)
    assert p.tolist() == pytest.approx([2 / 3, 1 / 2]) and r.tolist() == pytest.approx([1.0, 1 / 2])
    assert f.tolist() == pytest.approx([0.8, 0.5])


def test_subject_positions_are_the_last_subject_token(model, items) -> None:
    tokens, mask, pos = positions(model, items[:20], "subject")
    for i, it in enumerate(items[:20]):  # decoded together: a CJK character can span two byte-level tokens
        through = model.to_string(tokens[i, : int(pos[i]) + 1])
        assert through.endswith(it.subject), (through, it.subject)
        assert not model.to_string(tokens[i, : int(pos[i])]).endswith(it.subject)


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
    # like for like: one random dictionary against each null seed alone (best-of-N each); the null column
    # is their mean, value by value, so its mean is the seeds' mean (not their best: a best-of-2N)
    per_seed = sum(gt.null_by_seed) / len(gt.null_by_seed)
    assert len(gt.null_by_seed) == 2 and abs(gt.summary["mean_f1"] - per_seed) < 0.1, (
        gt.summary,
        gt.null_by_seed,
    )
    assert gt.summary["mean_null_f1"] == pytest.approx(per_seed, abs=1e-6)
    assert min(gt.null_by_seed) < max(gt.null_by_seed)  # two seeds, two nulls
    assert gt.summary["share_f1_ge_0.9"] < 0.2


def test_planted_detectors_score_high(model, items) -> None:
    """Latents built as linear probes of `continent` values (least squares on the one-hot labels, firing
    above 0.5) must be found as their value's best latent, far above the null."""
    tokens, mask, pos = positions(model, items, "subject")
    _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter="blocks.1.hook_resid_post")
    x = cache["blocks.1.hook_resid_post"][torch.arange(len(items)), pos]
    conts = sorted({it.values["continent"] for it in items if "continent" in it.values})
    sae = SAE(SAEConfig("standard", d_in=model.cfg.d_model, d_sae=len(conts), hook_name="blocks.1.hook_resid_post",
                        apply_b_dec_to_input=False))  # fmt: skip
    y = torch.tensor([[float(it.values.get("continent") == c) for c in conts] for it in items])
    xc = x - x.mean(0)
    ridge = 1e-2 * xc.pow(2).sum() / len(x) * torch.eye(x.shape[1])
    w = torch.linalg.solve(xc.T @ xc + ridge, xc.T @ (y - y.mean(0)))  # [d_model, values]
    with torch.no_grad():
        sae.W_enc.copy_(w)
        sae.b_enc.copy_(y.mean(0) - x.mean(0) @ w - 0.5)
        sae.W_dec.copy_(w.T / w.T.norm(dim=-1, keepdim=True))
    gt = evaluate(model, sae, items, null_seeds=2, max_ablations=len(conts), attributes=["continent"])
    rows = gt.table[gt.table.attribute == "continent"].set_index("value")
    for j, c in enumerate(conts):
        assert rows.loc[c, "latent"] == j
    assert rows.f1.min() > 0.9 and rows.f1.mean() > rows.null_f1.mean() + 0.2, rows[["f1", "null_f1"]]
    # Zeroing a latent spliced with the error term moves P(answer) only through that latent's decoder row.
    assert rows.drop_pos.notna().all() and rows.drop_neg.notna().all()
    assert set(gt.table.attribute) == {"continent"}
