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
    """The SVG mark elements (paths, lines, texts) of one Vega mark group such as 'mark-rect', in the chart
    under `.st-key-<key>`."""
    return driver.find_elements(b15.by().CSS_SELECTOR, f".st-key-{key} svg.marks g.{group} > *")


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

    def lit(d):
        return [
            p for p in svg_marks(d, "attention_grid", "mark-rect") if p.get_attribute("stroke") == HIGHLIGHT
        ]

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


def click(driver, element) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(element).click().perform()
    time.sleep(0.4)
    b15.settle(driver, "the click")


def aria(driver, key: str, group: str, *parts: str) -> list:
    return [
        m
        for m in svg_marks(driver, key, group)
        if all(p in (m.get_attribute("aria-label") or "") for p in parts)
    ]


def test_flow_graph_click_an_edge_or_a_node_opens_its_lens_and_head(url, driver, model):
    from interp.analysis import flow_graph, logit_lens
    from interp.analysis.explain import explain_head

    edges = flow_graph(model, PROMPT, threshold=0.0)
    heads = edges[edges["kind"] == "head"]
    # Every head edge is its own line, even between the same two tokens in the same layer.
    b15.open_page(driver, url, view="flow", threshold="0", flow_residual="0")
    rules = base.wait_for(driver, "the flow graph", lambda d: svg_marks(d, "flow_graph", "mark-rule"))
    assert len(rules) == len(heads)
    ends = {tuple(r.get_attribute(a) for a in ("transform", "x2", "y2")) for r in rules}  # start, end
    assert len(ends) == len(heads)  # no two lines drawn on top of each other

    best = heads.sort_values("importance", ascending=False).iloc[0]
    layer, head, src, dest = (int(best[c]) for c in ("layer", "head", "src", "dest"))
    tokens = model.to_str_tokens(PROMPT)
    b15.open_page(driver, url, view="flow")
    line = base.wait_for(
        driver, "the strongest edge", lambda d: aria(d, "flow_graph", "mark-rule", f"head: H{head}",
                                                     f"edge: L{layer} {tokens[src]!r} → {tokens[dest]!r}")
    )  # fmt: skip
    click(driver, line[0])
    panel = base.wait_for(
        driver, "the edge panel", lambda d: d.find_elements(b15.by().CSS_SELECTOR, ".st-key-flow_pick_panel")
    )[0].text
    assert f"through head L{layer}H{head} (layer {layer})" in panel
    lens = logit_lens(model, PROMPT, k=5)
    row = lens[(lens["layer"] == layer + 1) & (lens["pos"] == dest)].iloc[0]
    assert f"(lens row {layer + 1}): {row['top_tokens'][0]!r} {row['top_probs'][0]:.2f}" in panel
    promoted = explain_head(model, PROMPT, layer, head, dest).promoted
    assert ", ".join(map(repr, promoted)) in panel
    assert b15.base.query(driver)["flow_pick"] == [f"E{layer}.{head}.{src}.{dest}"]
    b15.fresh_copy(driver)  # the pick is in the link
    assert (
        f"through head L{layer}H{head}"
        in driver.find_element(b15.by().CSS_SELECTOR, ".st-key-flow_pick_panel").text
    )

    node = aria(driver, "flow_graph", "mark-symbol", f"node: {tokens[2]!r} entering L2")
    click(driver, node[0])
    panel = driver.find_element(b15.by().CSS_SELECTOR, ".st-key-flow_pick_panel").text
    row = lens[(lens["layer"] == 2) & (lens["pos"] == 2)].iloc[0]
    assert f"(lens row 2): {row['top_tokens'][0]!r} {row['top_probs'][0]:.2f}" in panel
    assert base.query(driver)["flow_pick"] == ["N2.2"]
