"""Bad folders and arguments give a LoadError that says what was wrong and what is allowed."""

from __future__ import annotations

import json

import pytest
import torch
from loading_helpers import copy_folder

import interp
from interp.loading import LoadError
from interp.loading.families import ARCHITECTURES, BY_MODEL_TYPE


def test_malformed_config_json_names_the_file_and_the_json_error(hf_dir, tmp_path):
    folder = copy_folder(hf_dir("gpt2"), tmp_path / "m")
    (folder / "config.json").write_text('{"model_type": "gpt2",, }')
    with pytest.raises(LoadError, match=r"m/config\.json is not valid JSON: Expecting property name .*line 1 column 23"):  # fmt: skip
        interp.load(folder)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(LoadError, match=r"config\.json must hold a JSON object, not list"):
        interp.load(folder)


def test_unknown_model_type_lists_every_registered_family(hf_dir, tmp_path):
    folder = copy_folder(hf_dir("gpt2"), tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["architectures"]
    (folder / "config.json").write_text(json.dumps(cfg | {"model_type": "frobnicator"}))
    with pytest.raises(LoadError, match=r"unsupported model_type 'frobnicator'") as e:
        interp.load(folder)
    assert "upgrade" not in str(e.value)  # transformers' advice never reaches the user
    for name in [*ARCHITECTURES, *BY_MODEL_TYPE]:  # the registry, read as it is (arch adds families)
        assert name in str(e.value)


def test_config_without_architectures_uses_model_type(hf_dir, tmp_path, tokens):
    folder = copy_folder(hf_dir("gpt2"), tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["architectures"]
    (folder / "config.json").write_text(json.dumps(cfg))
    assert torch.equal(interp.load(folder)(tokens), interp.load(hf_dir("gpt2"))(tokens))


def test_cuda_without_cuda_says_so(hf_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    with pytest.raises(LoadError, match=r"device='cuda' but CUDA is not available .*use device='cpu'"):
        interp.load(hf_dir("gpt2"), device="cuda")
    with pytest.raises(LoadError, match=r"device='cuda:1' but CUDA is not available"):
        interp.load(device="cuda:1")


def test_bad_device_dtype_and_bos_arguments(hf_dir):
    with pytest.raises(LoadError, match="invalid device 'gpu'"):
        interp.load(hf_dir("gpt2"), device="gpu")
    with pytest.raises(LoadError, match="dtype must be a floating-point torch dtype .* not torch.int64"):
        interp.load(hf_dir("gpt2"), dtype=torch.int64)
    with pytest.raises(LoadError, match="dtype must be a floating-point torch dtype .* not 'float13'"):
        interp.load(hf_dir("gpt2"), dtype="float13")
    with pytest.raises(LoadError, match="default_prepend_bos must be True, False or None, not 'yes'"):
        interp.load(hf_dir("gpt2"), default_prepend_bos="yes")


def test_check_parity_on_interps_own_folder_is_refused_before_loading(hf_dir, tmp_path, monkeypatch):
    interp.load(hf_dir("gpt2")).save(tmp_path)
    monkeypatch.setattr("interp.storage.read", lambda path: pytest.fail("the folder was read"))
    with pytest.raises(
        LoadError, match="check_parity compares against Hugging Face; this source is interp's own"
    ):
        interp.load(tmp_path, check_parity=True)
