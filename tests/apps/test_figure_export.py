"""Figure export: the dashboard's charts convert to PNG and SVG on the server (vl-convert), with their text."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

pytest.importorskip("vl_convert")
from apps.views import _converted, heatmap  # noqa: E402


def test_a_heatmap_exports_as_png_and_as_svg_with_its_cell_text():
    df = pd.DataFrame(
        {"position": ["0 The", "1 capital", "0 The", "1 capital"], "residual": ["0: a", "0: a", "1: b", "1: b"],
         "p": [0.1, 0.9, 0.5, 0.2], "top": ["Zebra", "Quokka", "Axolotl", "Narwhal"]}
    )  # fmt: skip
    chart = heatmap(df, "position", "residual", "p", text="top", domain=(0, 1), title="Lens", cell_px=120)
    png = _converted(chart.to_json(), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000
    svg = _converted(chart.to_json(), "svg").decode()
    assert svg.lstrip().startswith("<svg")
    for word in ("Zebra", "Quokka", "Axolotl", "Narwhal", "1 capital", "1: b", "Lens"):
        assert word in svg, word
