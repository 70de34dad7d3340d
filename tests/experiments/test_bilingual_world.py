"""The experiments on tiny-facts-2's world: chosen by the model's name, Chinese with --lang zh, --quick."""

from __future__ import annotations

import pandas as pd
import pytest
from experiment_helpers import assert_checks_line, assert_tables_match_csvs, load_script, run

import interp
from experiments.worlds import WorldError, embedded_name, world_for
from interp.cli import main as cli_main
from interp.embedded import DEFAULT, weights_dir

ZH = ["--model", "tiny-facts-2", "--lang", "zh", "--quick"]


def test_the_world_follows_the_model_name(tmp_path):
    assert embedded_name(None) == DEFAULT
    assert embedded_name("tiny-facts") == "tiny-facts"
    assert embedded_name(str(weights_dir("tiny-facts-2"))) == "tiny-facts-2"  # its weights folder
    assert embedded_name(str(tmp_path)) == DEFAULT  # any other model: the default's world
    old, zh, en = world_for("tiny-facts"), world_for("tiny-facts-2", "zh"), world_for("tiny-facts-2")
    assert (old.name, en.name, en.lang) == ("tiny-facts", "tiny-facts-2", "en")
    assert "currency" in old.relations and "currency" not in zh.relations
    assert (zh.first_prompt, en.first_prompt) == ("法国的首都是", "The capital of France is")
    facts = zh.facts(["capital", "birth_country"])
    assert {e.lang for e in facts} == {"zh"} and {e.relation for e in facts} == {"capital", "birth_country"}
    assert len(facts) == 43 + 64  # template 0 only: one prompt per country and per person
    assert ("法国的首都是", "法国", "巴黎") in [(e.prompt, e.subject, e.answer) for e in facts]
    assert zh.split_scene("奶奶正在厨房里做饭。后来她提到了苹果，指的是") == (
        "奶奶正在厨房里做饭。",
        "后来她提到了苹果，指的是",
    )
    assert set(zh.polysemes) >= {"苹果", "小米"} and "apple" in en.polysemes and "苹果" not in en.polysemes
    with pytest.raises(WorldError, match="the tiny-facts world has en only; tiny-facts-2 is bilingual"):
        world_for("tiny-facts", "zh")


@pytest.mark.parametrize(
    "script_name, args, message",
    [
        ("factual_recall", ["--model", "tiny-facts", "--lang", "zh"], "the tiny-facts world has en only"),
        ("factual_recall", ["--model", "tiny-facts-2", "--relations", "currency"], "unknown --relations"),
        ("context_injection", ["--model", "tiny-facts-2", "--lang", "zh", "--words", "apple"], "unknown --words"),
        ("context_injection", ["--lang", "fr"], "invalid choice: 'fr'"),
    ],
)  # fmt: skip
def test_bad_language_or_words_are_clear_errors(capsys, tmp_path, script_name, args, message):
    code, _, err = run(load_script(script_name), ["--out", str(tmp_path / "o"), *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.fixture(scope="module")
def model():
    return interp.load("tiny-facts-2")


@pytest.fixture(scope="module")
def facts_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("facts-zh") / "run"
    assert cli_main(["run", "factual-recall", *ZH, "--out", str(out)]) == 0
    return out


def test_chinese_facts_are_traced_on_their_own_subject_tokens(facts_out, model):
    facts = pd.read_csv(facts_out / "facts.csv")
    assert (facts.prompt.iloc[0], facts.answer.iloc[0]) == ("法国的首都是", "巴黎")
    for f in facts.itertuples():
        ids = model.to_tokens(f.prompt)[0]
        assert model.to_string(ids[f.subject_start : f.subject_end]) == f.subject, f
        assert f.n_tokens == len(ids)
    report = (facts_out / "report.md").read_text()
    assert "world tiny-facts-2 (zh)" in report
    assert assert_tables_match_csvs(report, facts_out) > 40
    assert_checks_line(report, pd.read_csv(facts_out / "checks.csv"))


def test_chinese_run_scores_tiny_facts_2s_own_dictionaries_on_chinese_facts(facts_out, model):
    """--model tiny-facts-2 --lang zh: the dictionaries shipped with tiny-facts-2, on its Chinese items."""
    import random

    import interp.sae
    from interp.sae.evaluate import evaluate, world_items

    summary = pd.read_csv(facts_out / "dictionary_summary.csv")
    shipped = [n for n in interp.sae.shipped() if n.startswith("tiny-facts-2/")]
    assert [f"tiny-facts-2/{s}" for s in summary.sae] == shipped and shipped
    table = pd.read_csv(facts_out / "dictionary.csv")
    items = random.Random(0).sample(world_items("tiny-facts-2", "zh"), 160)  # --quick's sample, --seed 0
    gt = evaluate(model, interp.sae.load(shipped[0]), items, null_seeds=1, max_ablations=3)
    mine = table[table.sae == shipped[0].split("/")[1]].reset_index(drop=True)
    assert mine.f1.tolist() == pytest.approx(gt.table.f1.tolist(), abs=1e-6)
    assert mine.n_pos.tolist() == gt.table.n_pos.tolist()


def test_knockout_skips_edges_a_window_has_already_cut(facts_out, model):
    """Layer 0 attends only to its own token: blocking last → last there would empty the softmax."""
    assert model.config.window(0) == 1
    ko = pd.read_csv(facts_out / "knockout.csv")
    layers = {s: sorted(set(d.layer)) for s, d in ko.groupby("sources")}
    assert layers["last"] == list(range(1, model.cfg.n_layers))
    assert layers["subject"] == list(range(model.cfg.n_layers))
    subject0 = ko[(ko.sources == "subject") & (ko.layer == 0)]
    assert (subject0.relative_change.abs() < 1e-6).all()  # an edge the window already cut changes nothing
    assert ko.relative_change.notna().all()


@pytest.fixture(scope="module")
def context_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("context-zh") / "run"
    script = load_script("context_injection")
    assert script["main"]([*ZH, "--words", "苹果,小米", "--out", str(out)]) == 0
    return out


def test_chinese_polysemes_are_located_and_patched(context_out, model):
    prompts = pd.read_csv(context_out / "prompts.csv")
    assert set(prompts.word) == {"苹果", "小米"} and set(prompts.sense) == {"公司", "水果", "手机", "粮食"}
    for p in prompts.itertuples():  # decoded together: a scene character can span two byte-level tokens
        ids = model.to_tokens(p.prompt)[0]
        assert model.to_string(ids[p.word_pos : p.word_pos + 1]) == p.word
        assert model.to_string(ids[p.context_start : p.context_end]) == p.prompt.split("。")[0] + "。"
    patch = pd.read_csv(context_out / "patching.csv")
    resid = patch[
        (patch.site == "resid_pre") & (patch.metric == "logit_diff") & (patch.destination == "prediction")
    ]
    assert resid.set_index("layer").recovery.iloc[-1] == pytest.approx(1.0, abs=1e-4)
    assert resid.set_index("layer").recovery.iloc[0] == pytest.approx(0.0, abs=1e-4)  # the same token "是"
    report = (context_out / "report.md").read_text()
    assert "world tiny-facts-2 (zh)" in report
    assert assert_tables_match_csvs(report, context_out) > 20
