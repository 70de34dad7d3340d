"""residual_update: E' = E + ΔE in tokens, checked against the model's own cache, logit_lens and DLA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from analysis_helpers import build, gpt2_like

from interp.analysis import direct_logit_attribution, logit_lens
from interp.analysis.update import residual_update

PROMPT = "The capital of France is Paris"


def llama_with_tokenizer():
    """RMSNorm, rotary, grouped-query attention, no attention output bias."""
    return build(2, tokenizer=True, norm="rmsnorm", positional="rotary", gated_mlp=True, act_fn="silu",
                 n_kv_heads=2, qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=False)  # fmt: skip


@pytest.mark.parametrize(
    "make, layer, pos", [(gpt2_like, 1, -1), (gpt2_like, 2, 3), (llama_with_tokenizer, 1, 2)]
)
@torch.no_grad()
def test_parts_sum_to_attn_out_and_e_plus_delta_is_resid_mid(make, layer, pos):
    model = make()
    u = residual_update(model, PROMPT, layer, pos)
    _, cache = model.run_with_cache(PROMPT)
    p = pos % len(model.to_str_tokens(PROMPT))
    e = cache["resid_pre", layer][0, p].double().numpy()
    delta = cache["attn_out", layer][0, p].double().numpy()
    e_prime = cache["resid_mid", layer][0, p].double().numpy()
    attn = model.blocks[layer].attn
    n_heads = model.cfg.n_heads
    heads = [(cache["z", layer][0, p, h] @ attn.W_O[h]).double().numpy() for h in range(n_heads)]
    np.testing.assert_allclose(u.vectors[:n_heads], np.stack(heads), atol=1e-5)  # ΔE_h = z_h W_O[h]
    assert u.parts["part"].tolist()[:n_heads] == [f"L{layer}H{h}" for h in range(n_heads)]
    assert len(u.parts) == n_heads + (attn.b_O is not None)  # b_O is a part only when the model has one
    np.testing.assert_allclose(u.vectors.sum(0), delta, atol=1e-5)  # Σ parts = ΔE = attn_out
    np.testing.assert_allclose(e + u.vectors.sum(0), e_prime, atol=1e-5)  # E' = E + ΔE = resid_mid
    assert max(u.parts_error, u.sum_error) < 1e-5
    assert u.cos == pytest.approx(e @ e_prime / (np.linalg.norm(e) * np.linalg.norm(e_prime)), abs=1e-6)
    assert u.ratio == pytest.approx(np.linalg.norm(delta) / np.linalg.norm(e), rel=1e-6)
    assert u.parts["norm"].tolist() == pytest.approx(np.linalg.norm(u.vectors, axis=1).tolist(), rel=1e-9)
    assert u.parts["share"].sum() == pytest.approx(1.0, abs=1e-5)


@torch.no_grad()
def test_lens_and_attribution_agree_with_logit_lens_and_dla():
    model = gpt2_like()
    layer, pos = 2, -1
    paris = model.to_single_token(" Paris")
    u = residual_update(model, PROMPT, layer, pos, target=paris, k=3)
    lens = logit_lens(model, PROMPT, paris, k=3)
    n = len(model.to_str_tokens(PROMPT))
    for row, lens_layer in (("E", layer), ("E'", None)):
        shown = u.lens[u.lens["residual"] == row].iloc[0]
        if lens_layer is None:  # E' = resid_mid is no logit_lens row: read it by hand
            _, cache = model.run_with_cache(PROMPT)
            logp = model.unembed(model.ln_final(cache["resid_mid", layer][0, -1])).double().log_softmax(-1)
            assert shown["target_logprob"] == pytest.approx(float(logp[paris]), abs=1e-5)
            assert shown["target_rank"] == int((logp > logp[paris]).sum())
            continue
        expected = lens[(lens["layer"] == lens_layer) & (lens["pos"] == n - 1)].iloc[0]
        assert shown["target_prob"] == pytest.approx(expected["target_prob"], abs=1e-6)
        assert shown["target_rank"] == expected["target_rank"]
        assert shown["top_tokens"] == expected["top_tokens"]
    dla = direct_logit_attribution(model, PROMPT, paris, read_pos=pos)
    mine = dla[(dla["layer"] == layer) & dla["component"].isin(["head", "attn_bias"])]
    assert u.parts["dla"].tolist() == pytest.approx(mine["attribution"].tolist(), abs=1e-5)


def test_bad_arguments_are_clear_errors():
    model = gpt2_like()
    with pytest.raises(ValueError, match="layer 7 out of range"):
        residual_update(model, PROMPT, 7)
    with pytest.raises(ValueError, match="pos 40 out of range"):
        residual_update(model, PROMPT, 0, 40)
    with pytest.raises(ValueError, match="target .* is not a token id"):
        residual_update(model, PROMPT, 0, -1, target=10**9)
