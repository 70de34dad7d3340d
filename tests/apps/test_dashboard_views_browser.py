"""Issue 15's views, their main interaction each, in a real browser: one `streamlit run` and one headless
chromium (with a download folder) for the whole module.

Each test acts as a user (types, clicks, downloads, copies the link into a fresh session) and reads what the
page shows: chart cells from the SVG (the heatmaps draw SVG, each mark labelled with its fields), tables from
the grid's accessible copy (scrolled through, since it holds only the rows on screen). Expected numbers are
computed here with the library, never hard-coded.
"""

from __future__ import annotations

import math
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import test_dashboard_browser as base  # noqa: E402
import test_dashboard_issue15_browser as b15  # noqa: E402

import interp  # noqa: E402
from interp.analysis import direct_logit_attribution, logit_lens, run_ablated  # noqa: E402
from interp.layers.norms import LayerNorm  # noqa: E402

PROMPT = "The capital of France is"
SAE_NAME = "seeded-topk"


@pytest.fixture(scope="module")
def model():
    return interp.load().requires_grad_(False)


@pytest.fixture(scope="module")
def model2():
    return interp.load("tiny-facts-2").requires_grad_(False)


@pytest.fixture(scope="module")
def sae(model2, tmp_path_factory):
    """A seeded random top-k dictionary on tiny-facts-2's layer-1 residual, saved where the server finds it."""
    from interp.sae import SAE, SAEConfig, save

    cfg = SAEConfig("topk", d_in=model2.cfg.d_model, d_sae=64, hook_name="blocks.1.hook_resid_post", k=4)
    sae = SAE(cfg)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    folder = tmp_path_factory.mktemp("saes") / SAE_NAME
    save(sae, folder)
    return sae.requires_grad_(False), folder


@pytest.fixture(scope="module")
def url(tmp_path_factory, sae):
    base.require_browser()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with base.streamlit_server(log, env={"INTERP_DASHBOARD_SAES": str(sae[1])}) as address:
        yield address


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def driver(tmp_path_factory, downloads):
    base.require_browser()
    with base.chromium(tmp_path_factory.mktemp("profile"), download_dir=downloads) as d:
        yield d


# --- reading charts and tables ----------------------------------------------------------------------------


def chart(driver, title: str):
    """The chart whose title is `title` (waits for it to draw)."""
    css = '[data-testid="stVegaLiteChart"]'

    def find(d):
        for c in d.find_elements(b15.by().CSS_SELECTOR, css):
            if title in [t.text for t in c.find_elements(b15.by().CSS_SELECTOR, "g.role-title text")]:
                return c
        return None

    return base.wait_for(driver, f"the chart {title!r}", find)


def described(element) -> dict[str, str]:
    """A Vega mark's fields from its aria-label, "position: 5 is; residual: 4: after L3; rank_text: 1"."""
    label = element.get_attribute("aria-label") or ""
    return dict(part.partition(": ")[::2] for part in label.split("; "))


def cells(chart_element, group: str = "mark-text") -> list[dict[str, str]]:
    """Every mark of one layer ("mark-text": cell text, "mark-rect": cells), its fields and its fill."""
    css = f"g.{group}.role-mark > path, g.{group}.role-mark > text"  # not the axes' and legends' own
    marks = chart_element.find_elements(b15.by().CSS_SELECTOR, css)
    return [{**described(m), "fill": m.get_attribute("fill"), "text": m.text} for m in marks]


def frames(driver, *columns: str) -> list[list[dict[str, str]]]:
    """The rows of every table whose header holds `columns`, read from the grids' accessible copies.

    A grid keeps only the rows on screen in that copy, so its scroller is walked down until every row
    (the copy's aria-rowcount, less the header) has been read."""
    b = b15.by()

    def find(d):
        found = []
        for f in d.find_elements(b.CSS_SELECTOR, '[data-testid="stDataFrame"]'):
            header = [h.get_attribute("textContent") for h in f.find_elements(b.CSS_SELECTOR, "thead th")]
            if header and all(c in header for c in columns):
                found.append((f, header))
        return found

    read = """const g = arguments[0], rows = {};
        const s = g.querySelector('.dvn-scroller');
        g.querySelectorAll('tbody tr').forEach(tr => { rows[tr.getAttribute('aria-rowindex')] =
            [...tr.querySelectorAll('td')].map(c => c.textContent); });
        const n = +g.querySelector('table[role=grid]').getAttribute('aria-rowcount') - 1;
        s.scrollTop += s.clientHeight / 2;  // the next rows, drawn by the time of the next read
        return [n, rows];"""
    out = []
    for grid, header in base.wait_for(driver, f"a table with {columns}", find):
        rows: dict[str, list[str]] = {}

        def all_read(d, grid=grid, rows=rows):
            n, seen = d.execute_script(read, grid)
            rows.update(seen)
            return len(rows) == n

        base.wait_for(driver, f"every row of the table with {columns}", all_read)
        driver.execute_script("arguments[0].querySelector('.dvn-scroller').scrollTop = 0", grid)
        out.append([dict(zip(header, rows[i], strict=True)) for i in sorted(rows, key=int)])
    return out


def frame(driver, *columns: str) -> list[dict[str, str]]:
    """The rows of the (first) table whose header holds `columns`."""
    return frames(driver, *columns)[0]


def click_text(driver, xpath: str) -> None:
    driver.find_element(b15.by().XPATH, xpath).click()
    time.sleep(0.3)
    b15.settle(driver, "the click")


# --- the features ---------------------------------------------------------------------------------------


def test_lens_target_shows_its_rank_and_log_probability_at_every_layer(url, driver, model):
    logits = model(PROMPT)[0, -1].double()
    target = int(logits.topk(2).indices[1])  # the runner-up: a rank that is not 0 everywhere
    word = model.to_string([target])
    final_rank = int((logits > logits[target]).sum())
    final_logprob = float(logits.log_softmax(-1)[target])
    n, n_tok = model.cfg.n_layers, len(model.to_str_tokens(PROMPT))

    b15.open_page(driver, url, view="lens")
    b15.type_into(driver, "lens_target", word)
    ranks = {
        (c["residual"], c["position"]): c["text"] for c in cells(chart(driver, f"Rank of {word!r} (0 = top)"))
    }
    logps = {(c["residual"], c["position"]): c["text"] for c in cells(chart(driver, f"log P({word!r})"))}
    assert len(ranks) == len(logps) == (n + 1) * n_tok  # a cell with its number for every layer and position

    last = (f"{n}: after L{n - 1}", f"{n_tok - 1} {model.to_str_tokens(PROMPT)[-1].strip()}")
    assert ranks[last] == str(final_rank) and final_rank > 0  # the lens's last row is the model's output
    assert logps[last] == f"{final_logprob:.1f}"

    click_text(driver, "//details/summary[.//p[text()='Table']]")
    table = frame(driver, "layer", "residual", "pos", "target_rank", "target_logprob")
    assert len(table) == (n + 1) * n_tok
    expected = logit_lens(model, PROMPT, target, k=3).set_index(["layer", "pos"])
    for row in table:
        layer, pos = int(row["layer"]), int(row["pos"])
        assert row["residual"].split(":")[0] == str(layer)  # the maps' row label names the table's layer
        position = f"{pos} {row['token'].strip() or repr(row['token'])}"
        assert ranks[row["residual"], position] == row["target_rank"]
        assert logps[row["residual"], position] == f"{float(row['target_logprob']):.1f}"
        want = expected.loc[(layer, pos)]
        assert int(row["target_rank"]) == int(want["target_rank"])
        assert float(row["target_logprob"]) == pytest.approx(math.log(want["target_prob"]), abs=1e-4)


def test_residual_update_shows_the_caches_cos_and_ratio_and_each_heads_dla(url, driver, model):
    layer, pos = 2, 3
    logits, cache = model.run_with_cache(PROMPT)
    target = int(logits[0, -1].topk(2).indices[1])  # attributed at "of": not its own top prediction
    word = model.to_string([target])

    b15.open_page(driver, url, view="attention", layer=str(layer), dest=str(pos))
    b15.type_into(driver, "update_target", word)
    shown = frame(driver, "layer", "cos(E, E')", "‖ΔE‖/‖E‖")
    assert [int(r["layer"]) for r in shown] == list(range(model.cfg.n_layers))
    for row, i in zip(shown, range(model.cfg.n_layers), strict=True):
        E, dE, E2 = (cache[name, i][0, pos].double() for name in ("resid_pre", "attn_out", "resid_mid"))
        assert float(row["cos(E, E')"]) == pytest.approx(float(E @ E2 / (E.norm() * E2.norm())), abs=5e-4)
        assert float(row["‖ΔE‖/‖E‖"]) == pytest.approx(float(dE.norm() / E.norm()), abs=5e-4)

    # "Each head writes z·W_O[h]; with b_O they sum to ΔE": each part's DLA is the library's, and together
    # they are ΔE's own direct effect on the target's logit (the final norm's scale frozen at this token).
    assert "with b_O they sum to ΔE" in driver.page_source
    parts = {r["part"]: float(r["DLA"]) for r in frame(driver, "part", "DLA")}
    dla = direct_logit_attribution(model, PROMPT, target, read_pos=pos)
    dla = dla[dla["layer"] == layer]
    heads = dla[dla["component"] == "head"]
    expected = {f"L{layer}H{int(h)}": a for h, a in zip(heads["head"], heads["attribution"], strict=True)}
    expected["b_O"] = float(dla.loc[dla["component"] == "attn_bias", "attribution"].iloc[0])
    assert parts == pytest.approx(expected, abs=1e-5)
    assert isinstance(model.ln_final, LayerNorm)  # so ΔE is centred before the frozen scale divides it
    dE = cache["attn_out", layer][0, pos].double()
    scale = cache["ln_final.hook_scale"][0, pos].double().reshape(())
    whole = float((dE - dE.mean()) / scale @ (model.W_U[:, target].double() * model.ln_final.w.double()))
    assert sum(parts.values()) == pytest.approx(whole, abs=1e-5)


def test_compare_keeps_the_second_prompt_in_the_link_and_shows_each_top_prediction(url, driver, model):
    second = "The capital of Japan is"
    b15.open_page(driver, url, view="compare")
    b15.type_into(driver, "compare", second)
    base.wait_for(driver, "the second prompt in the URL", lambda d: base.query(d).get("compare") == [second])
    b15.fresh_copy(driver)
    box = driver.find_element(b15.by().CSS_SELECTOR, ".st-key-compare input")
    assert box.get_attribute("value") == second
    assert f"Second: {second!r}" in driver.find_element(b15.by().CSS_SELECTOR, '[data-testid="stMain"]').text
    tables = frames(driver, "token", "p")
    assert len(tables) == 2, "one predictions table per prompt, side by side"
    for rows, prompt in zip(tables, (PROMPT, second), strict=True):
        probs = model(prompt)[0, -1].float().softmax(-1)
        top = int(probs.argmax())
        assert rows[0]["token"] == model.to_string([top])
        assert float(rows[0]["p"]) == pytest.approx(float(probs[top]), abs=1e-6)


def downloaded(folder: Path, name: str) -> Path:
    """Wait for `name` to be downloaded into `folder` (chromium writes <name>.crdownload first)."""
    path = folder / name
    deadline = time.monotonic() + base.WAIT_S
    while not (path.exists() and path.stat().st_size > 0 and not (folder / f"{name}.crdownload").exists()):
        if time.monotonic() > deadline:
            pytest.fail(f"{name} was not downloaded within {base.WAIT_S} s: {sorted(folder.iterdir())}")
        time.sleep(0.2)
    return path


def test_figure_export_downloads_a_png_and_an_svg_with_the_cells_text(url, driver, model, downloads):
    b15.open_page(driver, url, view="lens")
    shown = cells(chart(driver, "Top token and its probability"))
    n, tokens = model.cfg.n_layers, model.to_str_tokens(PROMPT)
    last = next(
        c
        for c in shown
        if c["residual"].startswith(f"{n}:") and c["position"].startswith(f"{len(tokens) - 1} ")
    )
    answer = model.to_string([int(model(PROMPT)[0, -1].argmax())])
    assert last["text"] == answer.strip()  # the page draws the model's answer in the last cell

    for name in ("lens_top.png", "lens_top.svg"):
        (downloads / name).unlink(missing_ok=True)
    for fmt in ("png", "svg"):
        driver.find_element(b15.by().CSS_SELECTOR, f".st-key-export_lens_top_{fmt} button").click()
    png = downloaded(downloads, "lens_top.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    svg = ET.parse(downloaded(downloads, "lens_top.svg")).getroot()
    assert svg.tag.endswith("svg")
    words = {"".join(t.itertext()).strip() for t in svg.iter() if t.tag.endswith("text")}
    assert last["text"] in words and "Top token and its probability" in words
    assert {c["text"] for c in shown} <= words  # every cell's text, not only the axes'


def test_features_select_a_latent_see_its_contexts_ablate_it_and_keep_it_in_the_link(
    url, driver, model2, sae
):
    from interp.embedded.tiny_facts_2.corpus import training_documents
    from interp.sae.features import prompt_latents, top_contexts, vocab_projection
    from interp.sae.latent import Latent

    sae = sae[0]
    b15.open_page(driver, url, view="features", model="tiny-facts-2", sae=SAE_NAME)
    expected = prompt_latents(model2, sae, PROMPT, k=3)
    listed = frame(driver, "position", "latent", "activation")
    assert [int(r["latent"]) for r in listed] == expected["latent"].tolist()
    assert [float(r["activation"]) for r in listed] == pytest.approx(
        expected["activation"].tolist(), abs=1e-4
    )

    latent = int(expected["latent"].iloc[-3])  # the last token's most active latent
    assert latent != int(expected["latent"].min())  # not the one shown before the user picks
    b15.type_into(driver, "latent", str(latent))
    base.wait_for(driver, "the latent in the URL", lambda d: base.query(d).get("latent") == [str(latent)])
    assert f"Latent {latent}: top contexts in the model's corpus" in driver.page_source
    corpus = training_documents(200, seed=0)  # the sample apps/backend.py gives the view
    contexts = top_contexts(model2, sae, corpus, n=8, latents=[latent], progress=False)
    shown = frame(driver, "activation", "context")
    assert [r["context"] for r in shown] == contexts["context"].tolist()
    assert [float(r["activation"]) for r in shown] == pytest.approx(contexts["activation"].tolist(), abs=1e-3)
    vocab = vocab_projection(model2, sae, k=8, latents=[latent])
    assert [r["token"] for r in frame(driver, "side", "token", "logit")] == vocab["token"].tolist()

    b15.click_label(driver, "feat_ablate")
    base.wait_for(driver, "the ablation in the URL", lambda d: base.query(d).get("feat_ablate") == ["1"])
    row = frame(driver, "token", "p_before", "p_after")[0]
    answer = model2.to_single_token(row["token"])
    before = model2(PROMPT)[0, -1].float().softmax(-1)[answer]
    after = run_ablated(model2, PROMPT, [Latent(sae, latent)]).logits[0, -1].float().softmax(-1)[answer]
    assert float(row["p_before"]) == pytest.approx(float(before), abs=1e-6)
    assert float(row["p_after"]) == pytest.approx(float(after), abs=1e-6)
    assert abs(float(after - before)) > 0.01  # the ablation visibly moves the prediction

    b15.fresh_copy(driver)  # the selected latent (and its ablation) come back from the link
    box = driver.find_element(b15.by().CSS_SELECTOR, ".st-key-latent input")
    assert box.get_attribute("value") == str(latent)
    again = frame(driver, "token", "p_before", "p_after")[0]
    assert float(again["p_after"]) == pytest.approx(float(after), abs=1e-6)


def number(text: str) -> float:
    return float(text.replace("\u2212", "-"))  # Vega writes a minus sign, not a hyphen


def darkness(fill: str) -> int:
    """How dark an "rgb(r, g, b)" fill is; the purples scheme darkens in every channel at once."""
    r, g, b = (int(v) for v in fill.removeprefix("rgb(").removesuffix(")").split(","))
    return -(r + g + b)


def test_fact_tracing_maps_share_one_colour_scale(url, driver):
    b15.open_page(driver, url, view="tracing")
    titles = ("Hidden state (block output)", "MLP output", "Attention output")
    maps = {t: chart(driver, t) for t in titles}
    legends = {
        t: [g.get_attribute("aria-label") for g in c.find_elements(b15.by().CSS_SELECTOR, "g.role-legend")]
        for t, c in maps.items()
    }
    assert len({tuple(v) for v in legends.values()}) == 1, legends  # one legend, the same in all three
    marked = {
        t: [(number(c["indirect_effect"]), c["fill"]) for c in cells(m, "mark-rect")] for t, m in maps.items()
    }
    highs = sorted(max(v for v, _ in cells_) for cells_ in marked.values())
    assert highs[-1] - highs[0] > 0.05, "the traces' ranges must differ for this check to mean anything"
    # One scale: one colour per value, darker for a larger effect, whichever map the cell is in. Once an
    # effect is negative the scale diverges around a white 0, so on each side darker means farther from 0.
    every = sorted(c for cells_ in marked.values() for c in cells_)
    for side in ([(v, f) for v, f in every if v >= 0], sorted((-v, f) for v, f in every if v < 0)):
        shades = [darkness(fill) for _, fill in side]
        assert shades == sorted(shades), "a larger effect is drawn lighter than a smaller one in another map"
