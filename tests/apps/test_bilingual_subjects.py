"""Fact tracing's subject suggestion knows tiny-facts-2's Chinese names, and tiny-facts' English ones."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from apps import backend  # noqa: E402
from apps.model_view import ModelView  # noqa: E402


def test_chinese_subjects_are_suggested():
    import interp

    _, names = backend._world("tiny-facts-2")
    assert {"France", "Paris", "法国", "巴黎", "Jordan Carter", "乔丹·卡特"} <= set(names)
    view = ModelView(interp.load("tiny-facts-2"), subjects=names)
    assert view.suggest_subject("法国的首都是") == "法国"
    assert view.suggest_subject("乔丹·卡特出生在") == "乔丹·卡特"
    assert view.suggest_subject("The capital of France is") == "France"
    _, old = backend._world("tiny-facts")
    assert "France" in old and not any("\u4e00" <= ch <= "\u9fff" for name in old for ch in name)
