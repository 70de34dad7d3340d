"""Issue 15's features in a real browser: one `streamlit run` and one headless chromium for the module.

Each test acts as a user (hovers, clicks, types, copies the link) and reads the page; expected numbers are
computed here with the library.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_dashboard_browser as base  # noqa: E402
import test_dashboard_issue15_browser as b15  # noqa: E402

import interp  # noqa: E402

PROMPT = "The capital of France is"
HIGHLIGHT = "#e4572e"


@pytest.fixture(scope="module")
def model():
    return interp.load().requires_grad_(False)


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    base.require_browser()
    with base.streamlit_server(tmp_path_factory.mktemp("server") / "streamlit.log") as address:
        yield address


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    base.require_browser()
    with base.chromium(tmp_path_factory.mktemp("profile")) as d:
        yield d


def svg_marks(driver, key: str, group: str) -> list:
    """The SVG mark elements of one Vega mark group (e.g. 'mark-rect') in the chart under `.st-key-<key>`."""
    return driver.find_elements(b15.by().CSS_SELECTOR, f".st-key-{key} svg.marks g.{group} > path, "
                                f".st-key-{key} svg.marks g.{group} > text")  # fmt: skip


def hover(driver, element) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(element).perform()
    time.sleep(0.4)


def test_attention_hover_highlights_a_tokens_row_and_column(url, driver, model):
    b15.open_page(driver, url, view="attention", layer="1")
    n = len(model.to_str_tokens(PROMPT))
    strip = base.wait_for(
        driver,
        "the token strip",
        lambda d: [t for t in svg_marks(d, "attention_grid", "mark-text") if t.text.startswith("2 ")],
    )
    lit = lambda d: [
        p for p in svg_marks(d, "attention_grid", "mark-rect") if p.get_attribute("stroke") == HIGHLIGHT
    ]  # noqa: E731
    assert not lit(driver)  # nothing outlined before the hover
    hover(driver, strip[0])
    # Token 2 attends to sources 0..2 (its row) and is attended by dests 2..n-1 (its column), in each head,
    # except cells the model masked (drawn grey, never outlined).
    _, cache = model.run_with_cache(PROMPT)
    pattern = cache["pattern", 1][0]
    expected = sum(
        int((pattern[h, 2, :3] > 0).sum()) + int((pattern[h, 2:, 2] > 0).sum()) - 1
        for h in range(model.cfg.n_heads)
    )
    cells = base.wait_for(driver, "outlined cells", lit)
    assert len(cells) == expected
    assert n > 3


def test_attention_prompt_is_coloured_by_the_selected_heads_attention(url, driver, model):
    b15.open_page(driver, url, view="attention", layer="2", head="1", dest="3")
    spans = base.wait_for(
        driver,
        "the coloured prompt",
        lambda d: d.find_elements(b15.by().CSS_SELECTOR, ".attn-prompt .attn-token"),
    )
    shown = [float(s.get_attribute("data-weight")) for s in spans]
    _, cache = model.run_with_cache(PROMPT)
    assert shown == pytest.approx(cache["pattern", 2][0, 1, 3].tolist(), abs=1e-6)
    struck = [s.value_of_css_property("text-decoration-line") == "line-through" for s in spans]
    assert struck == [i > 3 or w == 0.0 for i, w in enumerate(shown)]  # masked ≠ a small weight
    torch.testing.assert_close(torch.tensor(sum(shown)), torch.tensor(1.0), atol=1e-5, rtol=0)
