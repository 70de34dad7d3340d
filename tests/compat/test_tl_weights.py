"""Stacked weights, QK/OV FactoredMatrix with kv heads expanded, head labels, biases, TL parameter names."""

from __future__ import annotations

import pytest
import torch
from compat_helpers import TL3, gpt2, hf_gpt2, hf_llama_gqa, llama, tl3_model
from transformer_lens.FactoredMatrix import FactoredMatrix


@pytest.mark.parametrize("make", [gpt2, llama])
def test_stacked_weights_are_the_blocks(make):
    m = make()
    n, h, kv = m.cfg.n_layers, m.cfg.n_heads, m.cfg.kv_heads
    assert m.W_Q.shape == (n, h, m.cfg.d_model, m.cfg.d_head) and m.W_O.shape == (
        n,
        h,
        m.cfg.d_head,
        m.cfg.d_model,
    )
    assert m._W_K.shape == (n, kv, m.cfg.d_model, m.cfg.d_head) and m.W_K.shape == m.W_Q.shape
    for layer, block in enumerate(m.blocks):
        torch.testing.assert_close(m.W_Q[layer], block.attn.W_Q.detach())
        torch.testing.assert_close(m._W_V[layer], block.attn.W_V.detach())
        for head in range(h):  # query head `head` reads kv head head // (h // kv)
            torch.testing.assert_close(m.W_K[layer, head], block.attn.W_K[head // (h // kv)].detach())
        torch.testing.assert_close(m.W_in[layer], block.mlp.W_in.detach())
        torch.testing.assert_close(m.W_out[layer], block.mlp.W_out.detach())
    assert m.b_Q.shape == (n, h, m.cfg.d_head) and m.b_out.shape == (n, m.cfg.d_model)


def test_gated_and_positional_weights():
    assert llama().W_gate.shape == (2, 48, 80) and llama().W_pos is None
    assert gpt2().W_pos.shape == (48, 32)
    with pytest.raises(AttributeError, match="W_gate"):
        _ = gpt2().W_gate


@pytest.mark.parametrize("make", [gpt2, llama])
def test_qk_ov_are_factored_matrices_with_kv_expanded(make):
    m = make()
    assert isinstance(m.QK, FactoredMatrix) and isinstance(m.blocks[1].attn.OV, FactoredMatrix)
    d = m.cfg.d_model
    assert m.QK.shape == (m.cfg.n_layers, m.cfg.n_heads, d, d)
    layer, head = 1, m.cfg.n_heads - 1
    attn = m.blocks[layer].attn
    kv_head = head // (m.cfg.n_heads // m.cfg.kv_heads)
    qk = attn.W_Q[head] @ attn.W_K[kv_head].T
    ov = attn.W_V[kv_head] @ attn.W_O[head]
    torch.testing.assert_close(m.QK[layer, head].AB, qk.detach())
    torch.testing.assert_close(m.blocks[layer].attn.OV[head].AB, ov.detach())
    torch.testing.assert_close(m.OV.AB[layer, head], ov.detach())
    # Main's "by hand" FactoredMatrix on a GQA model was a shape mismatch; the expanded one composes.
    full_ov = m.W_E @ m.OV @ m.W_U
    assert full_ov.shape == (m.cfg.n_layers, m.cfg.n_heads, m.cfg.d_vocab, m.cfg.d_vocab)


@pytest.mark.parametrize("make, hf", [(gpt2, hf_gpt2), (llama, hf_llama_gqa)])
def test_weights_equal_tl3_hooked_transformer(make, hf):
    """In the TL 3 environment, the same names hold the same numbers as TL 3's HookedTransformer."""
    if not TL3:
        ref = None  # TL 4 has no HookedTransformer: the hand checks above are the reference there
        return
    ref, m = tl3_model(hf()), make()
    for name in (
        "W_Q",
        "W_K",
        "W_V",
        "W_O",
        "b_Q",
        "b_K",
        "b_V",
        "b_O",
        "W_in",
        "W_out",
        "b_in",
        "b_out",
        "_W_K",
        "_W_V",
    ):
        if hasattr(ref, name) or name in ("W_K", "W_V"):
            torch.testing.assert_close(getattr(m, name), getattr(ref, name).detach(), msg=name)
    torch.testing.assert_close(m.QK.AB, ref.QK.AB.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(m.OV.AB, ref.OV.AB.detach(), atol=1e-5, rtol=0)
    assert m.all_head_labels() == ref.all_head_labels()
    for layer in range(m.cfg.n_layers + 1):
        torch.testing.assert_close(m.accumulated_bias(layer), ref.accumulated_bias(layer).detach())
    torch.testing.assert_close(
        m.accumulated_bias(1, mlp_input=True), ref.accumulated_bias(1, mlp_input=True).detach()
    )


def test_accumulated_bias_by_hand():
    m = gpt2()
    b = m.blocks
    want = b[0].attn.b_O + b[0].mlp.b_out + b[1].attn.b_O
    torch.testing.assert_close(m.accumulated_bias(1, mlp_input=True), want.detach())
    torch.testing.assert_close(m.accumulated_bias(1, include_mlp_biases=False), b[0].attn.b_O.detach())
    with pytest.raises(ValueError, match="out of range"):
        m.accumulated_bias(4)


def test_tl_named_parameters():
    names = dict(llama().tl_named_parameters())
    assert "blocks.0.attn._W_K" in names and "blocks.0.attn.W_K" not in names and "blocks.0.ln1.w" in names
    assert set(dict(gpt2().tl_named_parameters())) == set(dict(gpt2().named_parameters()))  # MHA: same names
