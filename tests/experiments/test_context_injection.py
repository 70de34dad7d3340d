"""experiments/context_injection.py end to end with --quick: files, columns, report numbers, bad arguments."""

from __future__ import annotations

import pandas as pd
import pytest
from experiment_helpers import assert_checks_line, assert_columns, assert_tables_match_csvs, load_script, run

from experiments.reporting import fmt

PLOTS = ("layer_curves.png", "head_maps.png", "attention_top_heads.png", "flow_graph.png")


@pytest.fixture(scope="module")
def script():
    return load_script("context_injection")


@pytest.fixture(scope="module")
def out(script, tmp_path_factory):
    out = tmp_path_factory.mktemp("context") / "run"
    assert script["main"](["--quick", "--out", str(out)]) == 0
    return out


def test_writes_the_documented_files(out, script):
    for name in [*script["COLUMNS"], *PLOTS, "report.md"]:
        assert (out / name).stat().st_size > 0, name
    assert_columns(out, script)


def test_report_numbers_come_from_the_csvs(out):
    report = (out / "report.md").read_text()
    assert assert_tables_match_csvs(report, out) > 20
    stats = pd.read_csv(out / "layer_stats.csv")
    amb = stats[(stats.condition == "ambiguous") & (stats.position == "token")].set_index("layer")
    assert f"other positions is {fmt(amb.other_share[0])} at layer 0" in report
    probe = pd.read_csv(out / "probe.csv")
    tok = probe[probe.position == "token"].sort_values("layer")
    assert f"{fmt(tok.test_acc.iloc[0])} at the embeddings (chance {fmt(tok.chance.iloc[0])})" in report
    assert_checks_line(report, pd.read_csv(out / "checks.csv"))


def test_checks_are_recomputable(out):
    """The flow-vs-patching rank correlation in checks.csv is what the two CSVs give."""
    flow, patch = pd.read_csv(out / "head_flow.csv"), pd.read_csv(out / "patching.csv")
    p = patch[(patch.site == "head") & (patch.destination == "prediction") & (patch.metric == "logit_diff")]
    both = flow[flow.destination == "prediction"].merge(p, on=["layer", "head"])
    rho = both.from_context.rank().corr(both.recovery.rank())
    checks = pd.read_csv(out / "checks.csv").set_index("check")
    assert float(
        checks.loc["spearman(flow from context, logit_diff patching) over heads, prediction", "value"]
    ) == (pytest.approx(rho, abs=1e-9))


def test_patching_and_probe_are_sane(out):
    patch = pd.read_csv(out / "patching.csv")
    resid = patch[
        (patch.site == "resid_pre") & (patch.metric == "logit_diff") & (patch.destination == "prediction")
    ]
    # restoring the whole final residual at the read position restores the clean run exactly
    assert resid.set_index("layer").recovery.iloc[-1] == pytest.approx(1.0, abs=1e-4)
    assert resid.set_index("layer").recovery.iloc[0] == pytest.approx(0.0, abs=1e-4)  # same token " the"
    probe = pd.read_csv(out / "probe.csv")
    assert probe.test_acc.between(0, 1).all() and (probe.n_test > 0).all()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/nonexistent/model-dir"], "cannot load model"),
        (["--words", "apple,nosuchword"], "unknown --words ['nosuchword']"),
        (["--pairs-per-word", "0"], "--pairs-per-word must be >= 1"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_are_clear_errors(script, capsys, tmp_path, args, message):
    code, _, err = run(script, ["--out", str(tmp_path / "o"), *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_empty_texts_and_unwritable_out(script, capsys, tmp_path):
    empty = tmp_path / "texts.txt"
    empty.write_text("# only a comment\n\n")
    code, _, err = run(script, ["--out", str(tmp_path / "o"), "--texts", str(empty)], capsys)
    assert code == 2 and "is empty" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder cannot be made under a file, even as root
    code, _, err = run(script, ["--out", str(blocker / "out")], capsys)
    assert code == 2 and "not writable" in err and "Traceback" not in err
