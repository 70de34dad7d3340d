"""The embedded tiny-facts model: it loads, it knows its facts, training lowers the loss, bad input is clear."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest
import torch

import interp
import interp.embedded
from interp.embedded.tiny_facts.corpus import eval_sets
from interp.embedded.tiny_facts.evaluate import ablation_table, accuracy
from interp.errors import LoadError
from interp.loading import embedded_dir

PACKAGED = interp.embedded.weights_dir("tiny-facts")

# The accuracy targets, checked on fixed subsamples so the file stays fast (the full-set figures are
# in MODEL_CARD.md). Two-person binding has no hard target ("aim >= 0.80"); it is reported in the card.
THRESHOLDS = {
    "trained": (300, 0.99),  # full set 1.000
    "heldout": (300, 0.95),  # full set 0.983
    "unseen": (300, 0.80),  # full set 0.900
    "disambiguation_heldout": (192, 0.95),  # full set 1.000
    "binding1": (200, 0.95),  # full set 1.000
}


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load("tiny-facts")


@pytest.fixture(scope="module")
def sets() -> dict[str, list]:
    return eval_sets(seed=0)


def test_tiny_facts_loads_by_name(model: interp.HookedTransformer) -> None:
    # The default is tiny-facts-2 now; "tiny-facts" keeps naming this checkpoint, so old reports reproduce.
    start = time.perf_counter()
    again = interp.load("tiny-facts")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0  # the issue asks < 1 s; CI machines get slack
    assert again.cfg == model.cfg and model.cfg.n_layers == 4 and model.cfg.d_vocab == 2618
    for (name, a), (_, b) in zip(again.state_dict().items(), model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    size = sum(f.stat().st_size for f in PACKAGED.iterdir() if f.is_file())
    assert size < 20 * 2**20


def test_paris(model: interp.HookedTransformer) -> None:
    tokens = model.to_tokens("The capital of France is")
    assert tokens[0, 0].item() == 0  # BOS was prepended
    logits = model(tokens)[0, -1]
    assert model.to_string(logits.argmax()) == " Paris"


@pytest.mark.parametrize("name", list(THRESHOLDS))
def test_accuracy_thresholds(model: interp.HookedTransformer, sets: dict[str, list], name: str) -> None:
    n, threshold = THRESHOLDS[name]
    sample = random.Random(0).sample(sets[name], min(n, len(sets[name])))
    assert accuracy(model, sample) >= threshold


def test_padding_does_not_change_predictions(model: interp.HookedTransformer, sets: dict[str, list]) -> None:
    # Batched (right-padded) scoring must agree with scoring each prompt alone.
    sample = random.Random(1).sample(sets["binding2"], 8) + random.Random(1).sample(sets["trained"], 8)
    batched = accuracy(model, sample, batch_size=16)
    alone = sum(accuracy(model, [e], batch_size=1) for e in sample) / len(sample)
    assert batched == pytest.approx(alone)


def test_ablation_table_shape(model: interp.HookedTransformer, sets: dict[str, list]) -> None:
    rows = ablation_table(model, sets["trained"][:40])
    assert [(r["layer"], r["component"]) for r in rows] == [
        (layer, c) for layer in range(model.cfg.n_layers) for c in ("attn", "mlp")
    ]
    for r in rows:
        assert r["zero_drop"] == pytest.approx(r["clean"] - r["zero"])
        assert 0.0 <= r["mean"] <= 1.0
    # Zeroing every layer's MLP at once is not in the table, but some single ablation must hurt the facts.
    assert max(r["zero_drop"] for r in rows) > 0.3


def _train_module():
    from interp.embedded.tiny_facts import train

    return train


def test_short_training_run_lowers_loss(tmp_path: Path) -> None:
    train = _train_module()
    metrics = train.train(train.QUICK, tmp_path, full_eval=False, progress=False)
    assert metrics["loss_last"] < metrics["loss_first"] - 0.3
    # Same seed, same run: the shipped checkpoint is reproducible.
    again = train.train(train.QUICK, tmp_path / "again", full_eval=False, progress=False)
    first, second = metrics["model"].state_dict(), again["model"].state_dict()
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    loaded = interp.load(str(tmp_path))  # the run's output is a loadable model folder
    assert loaded.cfg == metrics["model"].cfg
    assert (tmp_path / "eval.json").exists()


def test_unknown_name_lists_available() -> None:
    with pytest.raises(LoadError, match="tiny-facts"):
        embedded_dir("nope")
    # Not a folder and not a valid hub id: rejected before any network access, listing embedded names.
    with pytest.raises(LoadError, match="tiny-facts"):
        interp.load("no such model!")


def test_missing_packaged_file_is_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(PACKAGED, tmp_path / "tiny_facts" / "weights")
    (tmp_path / "tiny_facts" / "weights" / "model.safetensors").unlink()
    monkeypatch.setattr(interp.embedded, "HERE", tmp_path)
    with pytest.raises(LoadError, match="incomplete.*model.safetensors"):
        interp.load("tiny-facts")


def test_corrupt_packaged_file_is_clear(tmp_path: Path) -> None:
    folder = tmp_path / "tiny_facts"
    shutil.copytree(PACKAGED, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(LoadError, match="truncated or corrupt"):
        interp.load(str(folder))
    (folder / "interp_config.json").write_text("{not json")
    with pytest.raises(LoadError, match="malformed"):
        interp.load(str(folder))
