"""The issue's targets against eval.json: the card's verdicts and the tests' thresholds follow one rule."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import interp
import interp.embedded
from interp.embedded.tiny_facts_2 import targets

PACKAGED = interp.embedded.weights_dir("tiny-facts-2")


def _metrics(**acc: float) -> dict:
    base = {f"{s}_{lang}": 1.0 for s in targets.ACCURACY_TARGETS for lang in targets.LANGS}
    return {"accuracy": {**base, **acc}}


def test_verdicts_say_how_much_is_missed():
    m = _metrics(trained_en=0.985, unseen_zh=0.85, binding2_en=0.5)
    met = targets.hard_accuracy_met(m["accuracy"])
    assert not met["trained_en"] and met["unseen_zh"] and "binding2_en" not in met  # research, not hard
    sizes = {k: 10 for k in m["accuracy"]}
    rows = {r.split(" | ")[0]: r for r in targets.accuracy_table(m, sizes).splitlines()}
    assert rows["| `trained`"].endswith("| ≥ 0.99 (hard) | **no** (-0.005) / yes |")
    assert rows["| `unseen`"].endswith("| yes / yes |")
    assert rows["| `binding2`"].endswith("| ≥ 0.9 (research) | **no** (-0.400) / yes |")


def test_shipped_thresholds_follow_the_rule():
    """thresholds.json is what `targets.thresholds` gives for the shipped weights and their eval.json."""
    shipped = json.loads((Path(__file__).parent / "thresholds.json").read_text())
    accuracy = json.loads((PACKAGED / "eval.json").read_text())["accuracy"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `python -m interp.embedded.tiny_facts_2.targets` measures them
    try:
        assert targets.thresholds(interp.load("tiny-facts-2"), accuracy) == shipped
    finally:
        torch.set_num_threads(threads)
