"""explain_head recomputes one head step by step; checked against a hand-written attention and the model's hooks."""

from __future__ import annotations

import math

import pytest
import torch
from analysis_helpers import build, gpt2_like

from interp.analysis.explain import explain_head

PROMPT = "The capital of France is Paris"


def llama_with_tokenizer():
    """RMSNorm, rotary, grouped-query attention (2 key/value heads for 4 heads), with the word tokenizer."""
    return build(1, tokenizer=True, norm="rmsnorm", positional="rotary", gated_mlp=True, act_fn="silu",
                 n_kv_heads=2, qkv_bias=False, attn_out_bias=False, mlp_bias=False, tie_embeddings=False)  # fmt: skip


@pytest.mark.parametrize("layer, head, dest", [(0, 1, -1), (2, 3, 2)])
@torch.no_grad()
def test_each_step_matches_a_hand_written_attention(layer, head, dest):
    model = gpt2_like()
    ex = explain_head(model, PROMPT, layer, head, dest)
    _, cache = model.run_with_cache(PROMPT)
    n = len(model.to_str_tokens(PROMPT))
    d = dest % n
    attn = model.blocks[layer].attn
    x = model.blocks[layer].ln1(cache["resid_pre", layer][0]).double()  # [pos, d_model]
    q = x[d] @ attn.W_Q[head].double() + attn.b_Q[head].double()
    k = x @ attn.W_K[head].double() + attn.b_K[head].double()
    v = x @ attn.W_V[head].double() + attn.b_V[head].double()
    scores = (k @ q) / math.sqrt(attn.d_head)
    causal = torch.arange(n) > d
    w = scores.masked_fill(causal, float("-inf")).softmax(-1)
    z = w @ v
    delta_head = z @ attn.W_O[head].double()
    assert ex.dest == d and ex.sources["token"].tolist() == model.to_str_tokens(PROMPT)
    assert ex.sources["q·k/√d"].tolist() == pytest.approx(scores.tolist(), abs=1e-5)
    assert ex.sources["weight"].tolist() == pytest.approx(w.tolist(), abs=1e-6)
    assert ex.sources["masked"].tolist() == causal.tolist()
    assert ex.z_norm == pytest.approx(float(z.norm()), rel=1e-5)
    assert ex.head_delta_norm == pytest.approx(float(delta_head.norm()), rel=1e-5)
    e, delta = cache["resid_pre", layer][0, d].double(), cache["attn_out", layer][0, d].double()
    assert ex.e_norm == pytest.approx(float(e.norm()), rel=1e-6)
    assert ex.e_prime_norm == pytest.approx(float(cache["resid_mid", layer][0, d].norm()), rel=1e-5)
    assert ex.head_share == pytest.approx(float(delta_head @ delta / delta.norm() ** 2), abs=1e-5)
    top = (delta_head.float() @ model.W_U).topk(5).indices.tolist()
    assert ex.promoted == [model.tokenizer.decode([i]) for i in top]
    assert max(ex.pattern_error, ex.z_error, ex.sum_error) < 1e-5


def test_rotary_grouped_query_heads_use_the_rotated_shared_key():
    model = llama_with_tokenizer()
    _, cache = model.run_with_cache(PROMPT)
    for head in range(4):
        ex = explain_head(model, PROMPT, 1, head)
        kv = head // 2  # 4 query heads share 2 key/value heads
        q, k = cache["blocks.1.attn.hook_rot_q"][0, -1, head], cache["blocks.1.attn.hook_rot_k"][0, :, kv]
        dots = (k @ q).tolist()
        assert ex.sources["q·k"].tolist() == pytest.approx(dots, abs=1e-4)
        # the softmax of scores that agree to ~1e-5 (above)
        assert ex.sources["weight"].tolist() == pytest.approx(
            cache["pattern", 1][0, head, -1].tolist(), abs=1e-5
        )
        assert max(ex.pattern_error, ex.z_error, ex.sum_error) < 1e-5


def test_bad_arguments_are_clear_errors():
    model = gpt2_like()
    with pytest.raises(ValueError, match="layer 7 out of range"):
        explain_head(model, PROMPT, 7, 0)
    with pytest.raises(ValueError, match="head 9 out of range"):
        explain_head(model, PROMPT, 0, 9)
    with pytest.raises(ValueError, match="dest 40 out of range"):
        explain_head(model, PROMPT, 0, 0, 40)
    with pytest.raises(ValueError, match="one prompt"):
        explain_head(model, [PROMPT, PROMPT], 0, 0)
