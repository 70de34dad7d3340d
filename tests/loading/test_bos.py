"""The BOS policy: the family's where it requires one, else whether the tokenizer has a BOS token."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import make_hf
from loading_helpers import copy_folder, word_tokenizer

import interp
from interp.loading import ARCHITECTURES

TEXT = "w1 w5 w9 w2"
IDS = [3, 7, 11, 4]  # word_tokenizer: w{i} has id i + 2


def _with_tokenizer(hf_dir, tmp_path, kind, bos):
    folder = copy_folder(hf_dir(kind), tmp_path / kind)
    word_tokenizer(bos=bos).save_pretrained(folder)
    return folder


def test_tokenizer_without_bos_defaults_to_no_bos(hf_dir, tmp_path):
    # Qwen's tokenizer has no BOS token: on main every text input raised "the tokenizer has no BOS token".
    folder = _with_tokenizer(hf_dir, tmp_path, "qwen2-bias", bos=False)
    # transformers rebuilds the folder's tokenizer as a Qwen2Tokenizer (which, like Qwen's, has no BOS)
    assert interp.load(folder).tokenizer.bos_token_id is None
    assert interp.load(folder).default_prepend_bos is False
    model = interp.load(folder, tokenizer=word_tokenizer(bos=False))  # one that splits our words
    assert model.default_prepend_bos is False
    assert model.to_tokens(TEXT).tolist() == [IDS]
    with torch.no_grad():
        hf = make_hf("qwen2-bias")(torch.tensor([IDS])).logits
    torch.testing.assert_close(model(TEXT), hf, atol=1e-5, rtol=0)


def test_tokenizer_with_bos_defaults_to_bos(hf_dir, tmp_path):
    model = interp.load(_with_tokenizer(hf_dir, tmp_path, "llama-gqa", bos=True))
    assert model.default_prepend_bos is True and model.to_tokens(TEXT).tolist() == [[1, *IDS]]


def test_default_prepend_bos_argument_wins(hf_dir, tmp_path):
    with_bos = _with_tokenizer(hf_dir, tmp_path, "llama-gqa", bos=True)
    assert interp.load(with_bos, default_prepend_bos=False).to_tokens(TEXT).tolist() == [IDS]
    no_bos = interp.load(_with_tokenizer(hf_dir, tmp_path, "qwen2-bias", bos=False), default_prepend_bos=True)
    assert no_bos.default_prepend_bos is True
    with pytest.raises(ValueError, match="tokenizer has no BOS token"):
        no_bos(TEXT)
    hf = make_hf("qwen2-bias")
    assert interp.load(hf, tokenizer=word_tokenizer(bos=False)).default_prepend_bos is False
    assert interp.load(hf, tokenizer=word_tokenizer(bos=False), default_prepend_bos=True).default_prepend_bos


@pytest.mark.parametrize("required", [True, False])
def test_a_family_rule_beats_the_tokenizer(hf_dir, tmp_path, monkeypatch, required):
    # Gemma requires BOS whatever its tokenizer says (Family.prepend_bos=True); stand one in for LLaMA.
    family = dataclasses.replace(ARCHITECTURES["LlamaForCausalLM"], prepend_bos=required)
    monkeypatch.setitem(ARCHITECTURES, "LlamaForCausalLM", family)
    folder = _with_tokenizer(hf_dir, tmp_path, "llama-gqa", bos=True)
    assert interp.load(folder).default_prepend_bos is required
    assert interp.load(folder, default_prepend_bos=not required).default_prepend_bos is (not required)


def test_saved_policy_round_trips_and_can_be_overridden(hf_dir, tmp_path):
    folder = _with_tokenizer(hf_dir, tmp_path, "qwen2-bias", bos=False)
    model = interp.load(folder, tokenizer=word_tokenizer(bos=False))
    model.save(tmp_path / "saved")
    assert interp.load(tmp_path / "saved").default_prepend_bos is False
    assert interp.load(tmp_path / "saved", default_prepend_bos=True).default_prepend_bos is True
