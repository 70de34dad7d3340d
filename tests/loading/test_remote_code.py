"""interp never runs code shipped with a checkpoint, and never waits on stdin to ask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_hf

import interp
from interp.loading import LoadError

ROOT = Path(__file__).resolve().parents[2]


def _plant_code(folder: Path, marker: Path, config_overrides: dict) -> None:
    """A `.py` that writes `marker` when imported, and a config.json whose auto_map points at it."""
    code = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    code += "from transformers import PretrainedConfig\nclass EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
    (folder / "evil.py").write_text(code)
    cfg_file = folder / "config.json"
    cfg = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    cfg |= {"auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilForCausalLM"}}
    cfg_file.write_text(json.dumps(cfg | config_overrides))


def _run_with_stdin_closed(folder: Path) -> subprocess.CompletedProcess:
    script = f"import interp\ntry:\n    interp.load({str(folder)!r})\nexcept interp.LoadError as e:\n    print('LOADERROR', e)\n"
    env = os.environ | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", script],
        stdin=subprocess.DEVNULL,  # a prompt would read EOF at once, never block
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=folder,
        preexec_fn=lambda: os.close(0),  # and then stdin is closed outright: input() cannot even start
    )


def test_unknown_architecture_with_auto_map_is_refused_without_running_it(tmp_path, monkeypatch):
    folder, marker = tmp_path / "m", tmp_path / "marker"
    folder.mkdir()
    _plant_code(folder, marker, {"model_type": "evil", "architectures": ["EvilForCausalLM"]})
    (folder / "model.safetensors").write_bytes(b"")

    def no_prompt(*a):
        raise AssertionError("interp asked on stdin")

    monkeypatch.setattr("builtins.input", no_prompt)
    with pytest.raises(LoadError, match=r"config\.json asks for the checkpoint's own Python code .*interp does not run checkpoint code"):  # fmt: skip
        interp.load(folder)
    assert not marker.exists()
    # In a fresh process with stdin closed (on main transformers prompted "run this code? [y/N]").
    out = _run_with_stdin_closed(folder)
    assert "LOADERROR" in out.stdout and "does not run checkpoint code" in out.stdout, out.stdout + out.stderr
    assert not marker.exists()


def test_supported_architecture_with_auto_map_runs_interps_own_code(hf_dir, tmp_path, tokens):
    # Hub repos such as Phi-3's ship an auto_map beside a class transformers has: like transformers with
    # trust_remote_code=False, interp then uses its own implementation, and the check uses HF's built-in one.
    folder, marker = tmp_path / "m", tmp_path / "marker"
    folder.mkdir()
    for f in hf_dir("llama-gqa").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    _plant_code(folder, marker, {})
    model = interp.load(folder, check_parity=True)
    assert model.parity_max_diff < 1e-5 and not marker.exists()
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), make_hf("llama-gqa")(tokens).logits, atol=1e-5, rtol=0)


def test_tokenizer_code_is_not_run(hf_dir, tmp_path):
    folder, marker = tmp_path / "m", tmp_path / "marker"
    folder.mkdir()
    for f in hf_dir("llama-gqa").iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "evil.py").write_text(f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n")
    tok_cfg = {
        "tokenizer_class": "EvilTokenizer",
        "auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]},
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    with pytest.raises(LoadError, match="tokenizer files in .* could not be loaded"):
        interp.load(folder)
    assert not marker.exists()
