"""The `interp` console script: demo on the embedded model, and clear errors for bad arguments."""

from __future__ import annotations

import re

import pytest

from interp.cli import main


def test_demo_tells_the_residual_story(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "' Paris'" in out.split("next-token predictions:")[1].splitlines()[1]  # top-1
    sums = re.findall(r"^\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\S+)$", out, flags=re.M)
    assert len(sums) == 4 and all(float(s) < 1e-5 for s in sums)  # resid_post = resid_pre + ΔE_attn + ΔE_mlp


def test_demo_bad_model_is_a_clear_error(capsys, tmp_path):
    assert main(["demo", "--model", str(tmp_path / "missing") + "/"]) == 2
    assert "no such folder" in capsys.readouterr().out


def test_run_rejects_unknown_experiment(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_run_all_gives_each_experiment_its_own_folder(tmp_path, capsys):
    assert main(["run", "all", "--quick", "--out", str(tmp_path)]) == 0
    for name in ("context-injection", "factual-recall"):
        assert (tmp_path / name / "report.md").exists()
