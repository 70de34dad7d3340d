"""Which weight files a folder load reads (transformers' precedence), and reading them one tensor at a time."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_hf
from loading_helpers import copy_folder
from safetensors.torch import load_file, save_file

import interp
from interp.loading import LoadError
from interp.storage import SafetensorsFile


def _hf_logits(kind, tokens):
    with torch.no_grad():
        return make_hf(kind)(tokens).logits


def test_stray_file_with_a_duplicate_key_is_not_read(hf_dir, tmp_path, tokens):
    # On main every *.safetensors was globbed and merged in name order: this one replaced W_E with zeros.
    folder = copy_folder(hf_dir("llama-gqa"), tmp_path / "m")
    save_file({"model.embed_tokens.weight": torch.zeros(96, 48)}, folder / "model_old.safetensors")
    torch.testing.assert_close(
        interp.load(folder)(tokens), _hf_logits("llama-gqa", tokens), atol=1e-5, rtol=0
    )


def test_consolidated_safetensors_beside_the_hf_weights(hf_dir, tmp_path, tokens):
    # Mistral repos ship their original-format weights too; transformers reads only model.safetensors.
    folder = copy_folder(hf_dir("mistral-window"), tmp_path / "m")
    save_file(
        {"tok_embeddings.weight": torch.randn(96, 48), "layers.0.attention.wq.weight": torch.randn(48, 48)},
        folder / "consolidated.safetensors",
    )
    torch.testing.assert_close(
        interp.load(folder)(tokens), _hf_logits("mistral-window", tokens), atol=1e-5, rtol=0
    )


def _sharded(tmp_path, kind="llama-gqa"):
    folder = tmp_path / "sharded"
    make_hf(kind).save_pretrained(folder, max_shard_size="40KB")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2  # really sharded
    return folder, index


def test_sharded_checkpoint_reads_exactly_the_indexed_files(tmp_path, tokens):
    folder, _ = _sharded(tmp_path)
    # A lone model.safetensors beside an index loses, as in transformers: this one is all zeros.
    zeros = {k: torch.zeros_like(v) for k, v in make_hf("llama-gqa").state_dict().items()}
    save_file(zeros, folder / "model.safetensors")
    save_file({"model.norm.weight": torch.zeros(48)}, folder / "model-99999-of-99999.safetensors")
    torch.testing.assert_close(
        interp.load(folder)(tokens), _hf_logits("llama-gqa", tokens), atol=1e-5, rtol=0
    )


def test_duplicate_key_across_indexed_files_is_an_error(tmp_path):
    folder, index = _sharded(tmp_path)
    files = sorted(set(index["weight_map"].values()))
    first = load_file(folder / files[0])
    key = next(iter(first))
    last = load_file(folder / files[-1]) | {key: torch.zeros_like(first[key])}
    save_file(last, folder / files[-1])
    with pytest.raises(LoadError, match=rf"tensor {key} is in both .*/model-.* and .*/model-") as e:
        interp.load(folder)
    assert files[0] in str(e.value) and files[-1] in str(e.value)


def test_index_naming_a_missing_file(tmp_path):
    folder, index = _sharded(tmp_path)
    gone = sorted(set(index["weight_map"].values()))[1]
    (folder / gone).unlink()
    with pytest.raises(LoadError, match=rf"names weight files that are not in .*{gone}"):
        interp.load(folder)


def test_shards_without_an_index_name_what_is_expected(tmp_path):
    folder, _ = _sharded(tmp_path)
    (folder / "model.safetensors.index.json").unlink()
    with pytest.raises(
        LoadError, match=r"expected model\.safetensors\.index\.json, model\.safetensors.*found only"
    ):
        interp.load(folder)


def test_sharded_pytorch_bin_with_index(tmp_path, tokens):
    hf = make_hf("gpt2-untied")
    hf.config.save_pretrained(tmp_path)  # transformers 5 only writes safetensors; write the legacy files
    state = hf.state_dict()
    keys = list(state)
    halves = {"pytorch_model-00001-of-00002.bin": keys[: len(keys) // 2],
              "pytorch_model-00002-of-00002.bin": keys[len(keys) // 2 :]}  # fmt: skip
    for name, ks in halves.items():
        torch.save({k: state[k] for k in ks}, tmp_path / name)
    weight_map = {k: name for name, ks in halves.items() for k in ks}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": weight_map}))
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, tmp_path / "pytorch_model.bin")  # loses
    torch.testing.assert_close(
        interp.load(tmp_path)(tokens), _hf_logits("gpt2-untied", tokens), atol=1e-5, rtol=0
    )


def test_safetensors_reader_equals_the_safetensors_library(tmp_path):
    gen = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 5, generator=gen),
        "bf16": torch.randn(7, generator=gen).to(torch.bfloat16),
        "f16": torch.randn(2, 2, 2, generator=gen).to(torch.float16),
        "f64": torch.randn(4, generator=gen, dtype=torch.float64),
        "i64": torch.arange(-3, 3),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 4),
    }
    save_file(tensors, tmp_path / "t.safetensors", metadata={"format": "pt"})
    reference = load_file(tmp_path / "t.safetensors")
    ours = SafetensorsFile(tmp_path / "t.safetensors")
    assert sorted(ours) == sorted(reference)
    for k, v in reference.items():
        assert ours[k].dtype == v.dtype and ours[k].shape == v.shape and torch.equal(ours[k], v), k


def test_safetensors_reader_rejects_a_corrupt_header(tmp_path):
    f = tmp_path / "bad.safetensors"
    f.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(LoadError, match="truncated or corrupt"):
        SafetensorsFile(f)
