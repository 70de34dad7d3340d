"""`model.save`: atomic per file, keeps other files in the folder, and a failed save leaves no half-model."""

from __future__ import annotations

import os

import pytest
import torch

import interp
from interp.errors import LoadError, SaveError


@pytest.fixture
def model(hf_dir):
    return interp.load(hf_dir("llama-gqa"))


def _same(a, b) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_save_into_a_folder_that_holds_other_files(model, tmp_path, tokens):
    out = tmp_path / "out"
    out.mkdir()
    (out / "tokenizer.json").write_text("from the training script")  # the model has no tokenizer here
    (out / "eval.json").write_text("{}")
    model.save(out)
    assert (out / "tokenizer.json").read_text() == "from the training script"
    assert (out / "eval.json").read_text() == "{}"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out"]  # no temporary folder left beside it
    again = interp.load(out, tokenizer=object())  # the stand-in tokenizer is not read back
    assert _same(model, again)


def test_failed_write_leaves_a_new_folder_absent(model, tmp_path, monkeypatch):
    import safetensors.torch

    def half_write(tensors, filename, metadata=None):
        open(filename, "wb").write(b"\0" * 100)  # part of the file is on disk, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    out = tmp_path / "new"
    with pytest.raises(
        SaveError, match=rf"saving the model to {out} failed .*No space left.*{out} is unchanged"
    ):
        model.save(out)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary folder


def test_failed_save_over_an_old_model_keeps_the_old_model(model, hf_dir, tmp_path, monkeypatch):
    old = interp.load(hf_dir("llama-mha"))
    old.save(tmp_path / "m")

    def failing_config(self, *a, **kw):
        raise OSError("disk quota exceeded")

    monkeypatch.setattr(type(tmp_path), "write_text", failing_config)  # weights written, config fails
    with pytest.raises(SaveError, match="disk quota exceeded"):
        model.save(tmp_path / "m")
    monkeypatch.undo()
    assert _same(interp.load(tmp_path / "m"), old)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m"]


def test_failure_while_moving_files_in_never_loads_as_a_mix(model, hf_dir, tmp_path, monkeypatch):
    interp.load(hf_dir("llama-mha")).save(tmp_path / "m")
    real = os.replace
    calls = []

    def second_fails(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise PermissionError(f"cannot write {dst}")
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(
        SaveError, match=r"partly updated \(2 file\(s\) removed or replaced\) and has no interp_config\.json"
    ):
        model.save(tmp_path / "m")
    monkeypatch.undo()
    # New weights, old config would have been a silent mix; without a config the folder refuses to load.
    with pytest.raises(LoadError, match="not a model folder"):
        interp.load(tmp_path / "m")
    model.save(tmp_path / "m")  # and a later save repairs it
    assert _same(interp.load(tmp_path / "m"), model)


def test_saving_onto_a_file_names_it(model, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SaveError, match=rf"cannot save the model to {tmp_path / 'f'}: it exists and is not a folder"):  # fmt: skip
        model.save(tmp_path / "f")
