"""Opt-in weight processing: each step equals TransformerLens's on the same weights, log-probs unchanged."""

from __future__ import annotations

import copy

import pytest
import torch
from compat_helpers import TL3, gpt2, hf_gpt2, hf_llama_gqa, llama, tl3_model, word_tokenizer
from transformer_lens.weight_processing import ProcessWeights

import interp

STEPS = ["fold_layer_norm", "center_writing_weights", "center_unembed", "fold_value_biases"]
TOKENS = torch.tensor(
    [[0, 3, 5, 4, 6, 7, 8, 9, 10, 19, 5, 12, 13, 14, 8], [0, 21, 22, 23, 24, 9, 25, 20, 3, 5, 4, 6, 7, 8, 9]]
)


def _tl_sd(model):
    sd = {k: v.detach().clone() for k, v in model.tl_state_dict().items()}
    sd.setdefault("unembed.b_U", torch.zeros(model.cfg.d_vocab))  # TL's unembed always has a bias
    for i in range(model.cfg.n_layers):  # TL fills missing biases with zeros (fill_missing_keys)
        for name, n in (("b_Q", model.cfg.n_heads), ("b_K", model.cfg.kv_heads), ("b_V", model.cfg.kv_heads)):
            key = f"blocks.{i}.attn.{'_' if model.cfg.kv_heads != model.cfg.n_heads and name != 'b_Q' else ''}{name}"
            sd.setdefault(key, torch.zeros(n, model.cfg.d_head))
        sd.setdefault(f"blocks.{i}.attn.b_O", torch.zeros(model.cfg.d_model))
        sd.setdefault(f"blocks.{i}.mlp.b_in", torch.zeros(model.cfg.d_mlp))
        sd.setdefault(f"blocks.{i}.mlp.b_out", torch.zeros(model.cfg.d_model))
    return sd


@pytest.mark.parametrize("make", [gpt2, llama])
@pytest.mark.parametrize("step", STEPS)
def test_each_step_equals_transformer_lens(make, step):
    base = make()
    ours = copy.deepcopy(base)
    tl_cfg = copy.deepcopy(base).cfg  # our TL-named view is what TL's ProcessWeights reads
    if step == "center_writing_weights" and base.cfg.norm != "layernorm":
        with pytest.warns(UserWarning, match="needs LayerNorm"):
            getattr(ours, step)()
        return  # TL skips it too for RMSNorm (with a warning)
    getattr(ours, step)()
    kw = {}
    if step == "fold_layer_norm":  # TL's process_weights folds RMSNorm without biases or centring
        kw = dict(fold_biases=base.cfg.norm == "layernorm", center_weights=base.cfg.norm == "layernorm")
    ref = getattr(ProcessWeights, step)(_tl_sd(base), tl_cfg, **kw)
    got = ours.tl_state_dict()
    compared = 0
    for key, want in ref.items():
        if key.endswith((".w", ".b")) and ("ln" in key):
            continue  # TL deletes folded norm weights; ours become 1 and 0 (checked below)
        if step == "fold_layer_norm" and ".mlp.W_gate" in key:
            continue  # TL 3 folds the norm weight into W_gate but not its bias or centring (checked below)
        if key not in got:  # a bias this model does not have: TL's must have stayed zero
            assert not want.any(), f"{step}: {key}"
            continue
        torch.testing.assert_close(got[key], want, atol=1e-6, rtol=0, msg=f"{step}: {key}")
        compared += 1
    assert compared >= 8
    # And the processed model computes the same distribution.
    torch.testing.assert_close(ours(TOKENS).log_softmax(-1), base(TOKENS).log_softmax(-1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("make", [gpt2, llama])
def test_all_steps_keep_log_probs_and_norms_become_pre(make):
    base = make()
    ours = copy.deepcopy(base)
    ours.process_weights_()
    torch.testing.assert_close(ours(TOKENS).log_softmax(-1), base(TOKENS).log_softmax(-1), atol=1e-5, rtol=0)
    assert ours.cfg.normalization_type == base.cfg.normalization_type + "Pre"
    assert all(bool((b.ln1.w == 1).all()) for b in ours.blocks) and bool((ours.ln_final.w == 1).all())
    if base.cfg.norm == "layernorm":
        # Centred writers: every residual contribution is mean-free along d_model.
        _, cache = ours.run_with_cache(TOKENS)
        assert cache["attn_out", 1].mean(-1).abs().max() < 1e-5 and ours.W_U.mean(-1).abs().max() < 1e-6
    with pytest.raises(ValueError, match="already applied"):
        ours.fold_layer_norm()


def test_processed_model_saves_and_reloads(tmp_path):
    m = interp.load(hf_gpt2(), tokenizer=word_tokenizer(), fold_ln=True, center_writing_weights=True,
                    center_unembed=True, fold_value_biases=True)  # fmt: skip
    m.save(tmp_path / "m")
    again = interp.load(tmp_path / "m")
    torch.testing.assert_close(again(TOKENS), m(TOKENS))


def test_load_kwargs_and_parity_on_log_probs():
    hf = hf_gpt2()
    m = interp.load(hf, fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True,
                    check_parity=True, parity_atol=1e-4)  # fmt: skip
    steps = ["fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases"]
    assert m.parity_max_diff < 1e-4 and m.processing == dict.fromkeys(steps, True)
    logits = m(TOKENS)
    assert logits.mean(-1).abs().max() < 1e-5  # the centred unembedding shifted every logit
    with torch.no_grad():
        hf_logits = hf(TOKENS).logits
    torch.testing.assert_close(logits.log_softmax(-1), hf_logits.log_softmax(-1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("hf", [hf_gpt2, hf_llama_gqa])
def test_tl3_from_pretrained_numbers_reproduced(hf):
    """The README's one line: TL 3's default processing gives TL 3's numbers, logits and weights."""
    if not TL3:
        return  # TL 3's HookedTransformer exists only in the second environment
    flags = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)
    ref = tl3_model(hf(), **flags)
    ours = interp.load(hf(), **flags)
    torch.testing.assert_close(ours(TOKENS), ref(TOKENS), atol=3e-5, rtol=0)
    torch.testing.assert_close(ours.W_U, ref.W_U.detach(), atol=1e-6, rtol=0)
    torch.testing.assert_close(ours.b_O, ref.b_O.detach(), atol=1e-6, rtol=0)
