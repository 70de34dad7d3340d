"""dtype: HF checkpoints load in float32 unless told; interp folders in the dtype they were saved in."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_hf

import interp
from interp.config import ModelConfig
from interp.loading import LoadError
from interp.transformer import HookedTransformer


def _bf16_dir(tmp_path):
    folder = tmp_path / "bf16"
    make_hf("llama-gqa").to(torch.bfloat16).save_pretrained(folder)
    return folder


def test_hf_checkpoints_load_in_float32_unless_told(tmp_path):
    folder = _bf16_dir(tmp_path)
    hf = make_hf("llama-gqa").to(torch.bfloat16)
    model = interp.load(folder)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.equal(model.W_E, hf.model.embed_tokens.weight.float())  # bf16 -> fp32 is exact
    assert {p.dtype for p in interp.load(hf).parameters()} == {torch.float32}  # in memory too
    half = interp.load(folder, dtype="float16")
    assert {p.dtype for p in half.parameters()} == {torch.float16}


def test_requested_dtype_is_rounded_once_from_the_checkpoint(hf_dir, tokens):
    model = interp.load(hf_dir("llama-gqa"), dtype=torch.bfloat16)
    hf = make_hf("llama-gqa")
    W_Q = hf.model.layers[1].self_attn.q_proj.weight.to(torch.bfloat16)  # [head * d_head, d_model]
    assert torch.equal(model.blocks[1].attn.W_Q, W_Q.reshape(6, 8, 48).transpose(1, 2))
    assert model(tokens).dtype == torch.bfloat16


def test_bf16_save_load_round_trips_exactly(hf_dir, tmp_path, tokens):
    # On main the folder came back in float32, and its logits differed from the saved model's by 0.08.
    model = interp.load(hf_dir("llama-gqa"), dtype=torch.bfloat16)
    model.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "interp_config.json").read_text())["dtype"] == "bfloat16"
    again = interp.load(tmp_path / "saved")
    assert again.W_E.dtype == torch.bfloat16
    assert torch.equal(again(tokens), model(tokens))
    assert interp.load(tmp_path / "saved", dtype=torch.float32).W_E.dtype == torch.float32


def test_folders_saved_before_dtype_was_recorded_load_in_float32(hf_dir, tmp_path):
    interp.load(hf_dir("gpt2"), dtype=torch.float16).save(tmp_path)
    meta_file = tmp_path / "interp_config.json"
    meta = json.loads(meta_file.read_text())
    del meta["dtype"]
    meta_file.write_text(json.dumps(meta))
    assert interp.load(tmp_path).W_E.dtype == torch.float32
    meta_file.write_text(json.dumps(meta | {"dtype": "int8"}))
    with pytest.raises(LoadError, match="dtype 'int8' is not a torch floating-point dtype"):
        interp.load(tmp_path)


@pytest.mark.parametrize("kind", ["gpt2", "llama-gqa", "llama-mqa"])
def test_streamed_parameters_keep_the_models_memory_layout(hf_dir, kind):
    # Weights are stored as nn.Linear's [d_out, d_in] (per head: W_Q/W_K/W_V as [head * d_head, d_model],
    # W_O as [d_model, head * d_head]), so all heads project in one matmul on a free, contiguous view.
    model = interp.load(hf_dir(kind))
    fresh = HookedTransformer(model.cfg)
    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters(), strict=True):
        assert p.stride() == q.stride() and not p.is_meta, name
    attn, mlp, m = model.blocks[0].attn, model.blocks[0].mlp, model.cfg.d_model
    for W in (attn.W_Q, attn.W_K, attn.W_V):
        flat = W.transpose(0, 1).reshape(m, -1).t()  # [head * d_head, d_model]
        assert flat.is_contiguous() and flat.data_ptr() == W.data_ptr()
    flat_out = attn.W_O.flatten(0, 1).t()  # [d_model, head * d_head]
    assert flat_out.is_contiguous() and flat_out.data_ptr() == attn.W_O.data_ptr()
    assert mlp.W_in.t().is_contiguous() and mlp.W_out.t().is_contiguous()
    if model.cfg.tie_embeddings:  # one matrix, read by the unembedding at call time
        assert model.W_U.data_ptr() == model.W_E.data_ptr()
        assert [n for n, _ in model.named_parameters()].count("embed.W_E") == 1


def test_stream_errors_name_the_tensor():
    from interp.loading.stream import build_empty, fill

    cfg = ModelConfig(d_model=8, n_layers=1, n_heads=2, d_head=4, d_mlp=16, d_vocab=10, n_ctx=8)
    full = dict(HookedTransformer(cfg).state_dict())

    def attempt(items):
        fill(
            build_empty(lambda: HookedTransformer(cfg, init=False)),
            items,
            torch.float32,
            torch.device("cpu"),
            "src",
        )

    with pytest.raises(LoadError, match=r"src: unexpected tensor blocks\.0\.attn\.W_X"):
        attempt([("blocks.0.attn.W_X", torch.zeros(1))])
    with pytest.raises(LoadError, match=r"src: tensor embed\.W_E was given twice"):
        attempt([("embed.W_E", full["embed.W_E"])] * 2)
    with pytest.raises(LoadError, match=r"src: tensor embed\.W_E has shape \(10, 9\), expected \(10, 8\)"):
        attempt([("embed.W_E", torch.zeros(10, 9))])
    with pytest.raises(LoadError, match=r"src: missing tensors \['ln_final\.w'"):
        attempt([(k, v) for k, v in full.items() if k != "ln_final.w"])
