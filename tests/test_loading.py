"""interp.load on Hugging Face checkpoints: logits, hidden states and patterns equal HF's (fp32, CPU)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import HF_FACTORIES, VOCAB, make_hf

import interp
from interp.loading import LoadError, ParityError

KINDS = list(HF_FACTORIES)


@pytest.mark.parametrize("kind", KINDS)
def test_logits_hidden_states_and_patterns_match_hf(kind, hf_dir, tokens):
    model = interp.load(hf_dir(kind))
    hf = make_hf(kind)
    with torch.no_grad():
        out = hf(tokens, output_hidden_states=True, output_attentions=True)
    logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(model(tokens), out.logits, atol=1e-5, rtol=0)  # the fused, hook-free path
    n = model.cfg.n_layers
    # HF's hidden_states[l + 1] is the residual after block l, except the last, which has the final norm.
    for layer in range(n - 1):
        torch.testing.assert_close(
            cache["resid_post", layer], out.hidden_states[layer + 1], atol=1e-5, rtol=0
        )
    torch.testing.assert_close(
        model.ln_final(cache["resid_post", n - 1]), out.hidden_states[n], atol=1e-5, rtol=0
    )
    for layer in range(n):
        torch.testing.assert_close(cache["pattern", layer], out.attentions[layer], atol=1e-6, rtol=0)


def test_in_memory_model_is_not_mutated_and_matches(tokens):
    hf = make_hf("llama-gqa")
    before = {k: v.clone() for k, v in hf.state_dict().items()}
    model = interp.load(hf, check_parity=True)
    assert model.parity_max_diff < 1e-5
    assert hf.training is False and all(torch.equal(before[k], v) for k, v in hf.state_dict().items())
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), hf(tokens).logits, atol=1e-5, rtol=0)


def test_check_parity_from_folder_and_failure(hf_dir):
    model = interp.load(hf_dir("gpt2"), check_parity=True)
    assert 0 <= model.parity_max_diff < 1e-5
    with pytest.raises(ParityError, match="largest .logit difference. vs Hugging Face"):
        interp.load(hf_dir("gpt2"), check_parity=True, parity_atol=-1.0)  # no difference is below -1


def test_windowed_layers_come_from_the_config(hf_dir):
    model = interp.load(hf_dir("mistral-window"))
    assert model.cfg.attn_windows == (4, 4, 4)
    assert interp.load(hf_dir("llama-gqa")).cfg.attn_windows == ()


def test_save_round_trip_is_exact(hf_dir, tmp_path, tokens):
    model = interp.load(hf_dir("qwen2-bias"))
    model.save(tmp_path / "saved")
    again = interp.load(tmp_path / "saved")
    assert again.cfg == model.cfg
    for (k, a), (k2, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert torch.equal(model(tokens), again(tokens))


def test_pytorch_bin_checkpoint(tmp_path, tokens):
    hf = make_hf("gpt2")
    hf.config.save_pretrained(
        tmp_path
    )  # transformers 5 only writes safetensors; write the legacy file by hand
    torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    with torch.no_grad():
        torch.testing.assert_close(interp.load(tmp_path)(tokens), hf(tokens).logits, atol=1e-5, rtol=0)


def test_dtype_and_device_arguments(hf_dir):
    model = interp.load(hf_dir("gpt2"), device="cpu", dtype=torch.bfloat16)
    assert model.W_E.dtype == torch.bfloat16
    assert model(torch.tensor([[1, 2, 3]])).dtype == torch.bfloat16


# ---- bad sources -------------------------------------------------------------------------------------------
def test_missing_folder(tmp_path):
    with pytest.raises(LoadError, match="no such folder"):
        interp.load(str(tmp_path / "nope") + "/")
    with pytest.raises(LoadError, match="no config.json"):
        interp.load(tmp_path)


def test_unsupported_architecture(tmp_path):
    # Bloom, not GPT-NeoX as before: the arch branch adds NeoX, and the assertion must stay as strong.
    from transformers import BloomConfig, BloomForCausalLM

    BloomForCausalLM(BloomConfig(hidden_size=32, n_layer=1, n_head=4, vocab_size=VOCAB)).save_pretrained(
        tmp_path
    )
    with pytest.raises(
        LoadError, match="unsupported architecture BloomForCausalLM; supported: GPT2LMHeadModel"
    ):
        interp.load(tmp_path)


def test_truncated_safetensors(hf_dir, tmp_path):
    src = hf_dir("gpt2")
    for f in src.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(LoadError, match="truncated or corrupt"):
        interp.load(tmp_path)


def test_misshapen_and_missing_tensor_named(tmp_path):
    from safetensors.torch import load_file, save_file

    make_hf("llama-gqa").save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    state["model.layers.1.self_attn.k_proj.weight"] = torch.zeros(7, 48)
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(
        LoadError, match=r"model\.layers\.1\.self_attn\.k_proj\.weight has shape \(7, 48\).*\(16, 48\)"
    ):
        interp.load(tmp_path)
    del state["model.layers.1.self_attn.k_proj.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(LoadError, match=r"missing tensor model\.layers\.1\.self_attn\.k_proj\.weight"):
        interp.load(tmp_path)


def test_hub_id_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LoadError, match="could not fetch 'someone/some-model' from the Hugging Face hub"):
        interp.load("someone/some-model")


def test_corrupt_interp_config(hf_dir, tmp_path):
    model = interp.load(hf_dir("gpt2"))
    model.save(tmp_path)
    (tmp_path / "interp_config.json").write_text(json.dumps({"config": {"d_model": 3}}))
    with pytest.raises(LoadError, match="malformed"):
        interp.load(tmp_path)
