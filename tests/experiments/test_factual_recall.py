"""experiments/factual_recall.py end to end with --quick, through `interp run`: files, numbers, errors."""

from __future__ import annotations

import pandas as pd
import pytest
from experiment_helpers import assert_checks_line, assert_columns, assert_tables_match_csvs, load_script, run

import interp.sae
from experiments.reporting import fmt
from interp.cli import main as cli_main
from interp.embedded import DEFAULT

PLOTS = ("causal_trace.png", "causal_trace_example.png", "knockout.png", "mlp_ablation.png", "logit_lens.png")


@pytest.fixture(scope="module")
def script():
    return load_script("factual_recall")


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("facts") / "run"
    assert cli_main(["run", "factual-recall", "--quick", "--out", str(out)]) == 0
    return out


def test_writes_the_documented_files(out, script):
    for name in [*script["COLUMNS"], *PLOTS, "report.md"]:
        assert (out / name).stat().st_size > 0, name
    assert_columns(out, script)


def test_paris_is_traced_first(out):
    facts = pd.read_csv(out / "facts.csv")
    first = facts.iloc[0]
    assert (first.prompt, first.answer) == ("The capital of France is", " Paris")
    assert (facts.total_effect - (facts.p_clean - facts.p_corrupted)).abs().max() < 1e-9  # TE = P(o) − P*(o)
    trace = pd.read_csv(out / "causal_trace.csv")
    before = trace[trace.role == "before subject"]
    assert (before.indirect_effect.abs() < 1e-6).all()  # the noise cannot reach tokens before the subject


def test_report_numbers_come_from_the_csvs(out):
    report = (out / "report.md").read_text()
    assert assert_tables_match_csvs(report, out) > 40
    facts = pd.read_csv(out / "facts.csv")
    assert f"average total effect TE = {fmt(facts.total_effect.mean())}" in report
    summary = pd.read_csv(out / "trace_summary.csv")
    mlp = summary[(summary.kind == "mlp") & (summary.role == "subject last")]
    best = mlp.loc[mlp.mean_ie.idxmax()]
    assert f"mlp {fmt(best.mean_ie)} at layer {int(best.layer)}" in report
    assert_checks_line(report, pd.read_csv(out / "checks.csv"))


def test_checks_are_recomputable(out):
    params = pd.read_csv(out / "params.csv").set_index("component").params
    share = params.mlp / (params.total - params.embedding - params.unembedding)
    checks = pd.read_csv(out / "checks.csv").set_index("check")
    row = checks.loc["MLP share of non-embedding parameters"]
    assert float(row.value) == pytest.approx(share) and str(row.agree) == str(abs(share - 2 / 3) < 0.05)
    abl = pd.read_csv(out / "ablation_summary.csv")
    zero = abl[(abl.method == "zero") & (abl["where"] == "subject")]
    layer = int(zero.loc[zero.mean_relative_change.idxmin()].layer)
    assert int(checks.loc["most damaging zero-ablated MLP at the subject tokens: layer", "value"]) == layer


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "/nonexistent/model-dir"], "cannot load model"),
        (["--relations", "capital,colour"], "unknown --relations ['colour']"),
        (["--n-facts", "0"], "--n-facts must be >= 1"),
    ],
)
def test_bad_arguments_are_clear_errors(script, capsys, tmp_path, args, message):
    code, _, err = run(script, ["--out", str(tmp_path / "o"), *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err


def test_empty_or_unusable_prompt_files(script, capsys, tmp_path):
    prompts = tmp_path / "prompts.tsv"
    prompts.write_text("\n")
    code, _, err = run(script, ["--out", str(tmp_path / "o"), "--prompts", str(prompts)], capsys)
    assert code == 2 and "is empty" in err
    prompts.write_text("The capital of France is\tFrance\n")  # no answer column
    code, _, err = run(script, ["--out", str(tmp_path / "o"), "--prompts", str(prompts)], capsys)
    assert code == 2 and "prompt<TAB>subject<TAB>answer" in err
    prompts.write_text("The capital of France is\tFrance\t Rome\n")  # a fact the model gets wrong
    code, _, err = run(script, ["--out", str(tmp_path / "o"), "--prompts", str(prompts)], capsys)
    assert code == 2 and "answers none of the 1 facts correctly" in err and "Traceback" not in err


def test_unwritable_out(script, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run(script, ["--out", str(blocker / "out")], capsys)
    assert code == 2 and "not writable" in err


def test_custom_prompt_file(script, capsys, tmp_path):
    """--prompts replaces the built-in facts (the answer is taken verbatim, leading space included)."""
    prompts = tmp_path / "prompts.tsv"
    prompts.write_text("# prompt, subject, answer\nThe capital of France is\tFrance\t Paris\n")
    out = tmp_path / "o"
    code, stdout, err = run(script, ["--quick", "--out", str(out), "--prompts", str(prompts)], capsys)
    assert code == 0, err
    assert f"report: {out / 'report.md'}" in stdout
    facts = pd.read_csv(out / "facts.csv")
    assert facts[["relation", "answer"]].values.tolist() == [["custom", " Paris"]]


def test_other_architecture(script, capsys, tmp_path):
    """--model takes any model interp.load accepts: here a random LLaMA-style one (RoPE, RMSNorm, GQA, SwiGLU)
    with the tiny-facts tokenizer, on a fact whose answer is its own top prediction."""
    import torch

    import interp
    from interp.config import ModelConfig
    from interp.transformer import HookedTransformer

    tokenizer = interp.load("tiny-facts").tokenizer  # English BPE: a random argmax decodes to a whole token
    cfg = ModelConfig(d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_head=8, d_mlp=48, d_vocab=len(tokenizer),
                      n_ctx=64, norm="rmsnorm", act_fn="silu", gated_mlp=True, positional="rotary",
                      qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    path = HookedTransformer(cfg, tokenizer=tokenizer).save(tmp_path / "llama")
    model = interp.load(path)
    prompt = "The capital of France is"
    answer = model.to_string([int(model(prompt)[0, -1].argmax())])
    (tmp_path / "p.tsv").write_text(f"{prompt}\tFrance\t{answer}\n")
    args = [
        "--quick",
        "--model",
        str(path),
        "--prompts",
        str(tmp_path / "p.tsv"),
        "--out",
        str(tmp_path / "o"),
    ]
    code, _, err = run(script, args, capsys)
    assert code == 0, err
    assert pd.read_csv(tmp_path / "o" / "trace_summary.csv").layer.max() == 1


def test_dictionary_section_scores_the_shipped_dictionaries(out):
    """The report's ground-truth section runs on the dictionaries shipped with the default model (no
    training)."""
    summary = pd.read_csv(out / "dictionary_summary.csv").set_index("sae")
    shipped = [n.split("/")[1] for n in interp.sae.shipped() if n.startswith(f"{DEFAULT}/")]
    assert list(summary.index) == shipped and shipped
    table = pd.read_csv(out / "dictionary.csv")
    for sae, rows in table.groupby("sae"):
        assert summary.loc[sae, "mean_f1"] == pytest.approx(rows.f1.mean())
        assert summary.loc[sae, "share_f1_ge_0.9"] == pytest.approx((rows.f1 >= 0.9).mean())
        assert (
            (rows.f1 >= 0) & (rows.f1 <= 1)
        ).all() and rows.drop_pos.notna().sum() == 3  # quick: 3 ablated
    report = (out / "report.md").read_text()
    assert "Shipped dictionaries against the world's ground truth" in report
    first = shipped[0]
    assert f"{first} {fmt(summary.loc[first, 'share_f1_ge_0.9'])} (null" in report
