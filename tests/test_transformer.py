"""HookedTransformer: the residual-stream invariants, the fast vs hooked paths, tokens and bad input."""

from __future__ import annotations

import pytest
import torch

from interp import HookedTransformer, ModelConfig

GPT = ModelConfig(d_model=32, n_layers=3, n_heads=4, d_head=8, d_mlp=64, d_vocab=50, n_ctx=16)
LLAMA = ModelConfig(
    d_model=32, n_layers=3, n_heads=4, d_head=8, d_mlp=48, d_vocab=50, n_ctx=16, n_kv_heads=2, norm="rmsnorm",
    act_fn="silu", gated_mlp=True, positional="rotary", qkv_bias=False, attn_out_bias=False, mlp_bias=False,
    tie_embeddings=False, attn_windows=(3, None, 5),
)  # fmt: skip


@pytest.fixture(params=[GPT, LLAMA], ids=["gpt2-like", "llama-like-windowed"])
def model(request):
    torch.manual_seed(0)
    m = HookedTransformer(request.param)
    with torch.no_grad():  # non-zero biases and norm weights so no term can vanish unnoticed
        for p in m.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return m


@pytest.fixture
def toks():
    return torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(3))


def test_residual_stream_sums(model, toks):
    _, cache = model.run_with_cache(toks)
    for layer in range(model.cfg.n_layers):
        torch.testing.assert_close(
            cache["resid_mid", layer], cache["resid_pre", layer] + cache["attn_out", layer]
        )
        torch.testing.assert_close(
            cache["resid_post", layer], cache["resid_mid", layer] + cache["mlp_out", layer]
        )
        b_O = model.blocks[layer].attn.b_O
        heads = cache["result", layer].sum(2) + (0 if b_O is None else b_O)
        torch.testing.assert_close(cache["attn_out", layer], heads, atol=1e-6, rtol=0)
    embed = cache["embed"] + (cache["pos_embed"] if "hook_pos_embed" in cache else 0)
    torch.testing.assert_close(cache["resid_pre", 0], embed)


def test_hooked_and_fused_paths_agree(model, toks):
    fused = model(toks)
    logits, cache = model.run_with_cache(toks)
    torch.testing.assert_close(logits, fused, atol=1e-5, rtol=0)
    for layer in range(model.cfg.n_layers):  # the pattern obeys causality and the layer's window
        pattern = cache["pattern", layer][0, 0]
        window = model.cfg.window(layer)
        for q in range(pattern.shape[0]):
            allowed = [k for k in range(pattern.shape[1]) if k <= q and (window is None or q - k < window)]
            assert pattern[q, allowed].sum().item() == pytest.approx(1.0, abs=1e-5)


def test_hook_can_edit_activation_and_result_is_lazy(model, toks):
    seen = []

    def zero_head(result, hook):
        seen.append(hook.name)
        result[:, :, 1] = 0
        return result

    edited = model.run_with_hooks(toks, fwd_hooks=[("blocks.1.attn.hook_result", zero_head)])
    # Reference: zero head 1's output rows of W_O by hand.
    ref_model = HookedTransformer(model.cfg)
    ref_model.load_state_dict(model.state_dict())
    with torch.no_grad():
        ref_model.blocks[1].attn.W_O[1] = 0
    torch.testing.assert_close(edited, ref_model(toks), atol=1e-5, rtol=0)
    assert seen == ["blocks.1.attn.hook_result"]


def test_padding_matches_unpadded_runs(model, toks):
    short, full = toks[0, :5], toks[1]
    batch = torch.stack([torch.cat([short, torch.zeros(4, dtype=torch.long)]), full])
    mask = torch.ones_like(batch)
    mask[0, 5:] = 0
    out = model(batch, attention_mask=mask)
    torch.testing.assert_close(out[0, :5], model(short)[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], model(full)[0], atol=1e-5, rtol=0)
    left = torch.stack([torch.cat([torch.zeros(4, dtype=torch.long), short]), full])
    out = model(left, attention_mask=mask.flip(-1))
    torch.testing.assert_close(out[0, 4:], model(short)[0], atol=1e-5, rtol=0)


def test_start_and_stop_at_layer(model, toks):
    resid = model(toks, stop_at_layer=2)
    _, cache = model.run_with_cache(toks)
    torch.testing.assert_close(resid, cache["resid_pre", 2])
    torch.testing.assert_close(model(resid, start_at_layer=2), model(toks), atol=1e-5, rtol=0)


def test_loss_matches_cross_entropy(model, toks):
    logits = model(toks)
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 50), toks[:, 1:].reshape(-1))
    torch.testing.assert_close(model.loss(toks), ref)
    assert model.loss(toks, per_token=True).shape == (2, 8)
    loss = model(toks, return_type="loss")
    torch.testing.assert_close(loss, ref)


def test_weights_are_per_head(model):
    cfg = model.cfg
    attn = model.blocks[0].attn
    assert attn.W_Q.shape == (cfg.n_heads, cfg.d_model, cfg.d_head)
    assert attn.W_K.shape == (cfg.kv_heads, cfg.d_model, cfg.d_head)
    assert attn.W_O.shape == (cfg.n_heads, cfg.d_head, cfg.d_model)


def test_rotary_hooks_only_on_rotary_models():
    names = set(HookedTransformer(LLAMA).hook_names())
    assert {"blocks.0.attn.hook_rot_q", "blocks.0.attn.hook_rot_k", "blocks.0.mlp.hook_pre_linear"} <= names
    assert "hook_pos_embed" not in names
    gpt = set(HookedTransformer(GPT).hook_names())
    assert "blocks.0.attn.hook_rot_q" not in gpt and "hook_pos_embed" in gpt


# ---- bad input ---------------------------------------------------------------------------------------------
def test_input_longer_than_context(model):
    with pytest.raises(ValueError, match="17 tokens but the model's context n_ctx is 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    assert model(torch.zeros(1, 16, dtype=torch.long)).shape == (1, 16, 50)  # still usable


def test_empty_input(model):
    with pytest.raises(ValueError, match="empty input"):
        model(torch.zeros(1, 0, dtype=torch.long))
    with pytest.raises(ValueError, match="empty input"):
        model([])


def test_out_of_vocab_and_wrong_dtype(model):
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 50\)"):
        model(torch.tensor([[1, 50]]))
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.zeros(1, 3))


def test_text_without_tokenizer(model):
    with pytest.raises(ValueError, match="no tokenizer"):
        model("hello")


def test_config_validation():
    with pytest.raises(ValueError, match="n_kv_heads=3 must be positive and divide n_heads=4"):
        ModelConfig(d_model=8, n_layers=1, n_heads=4, d_head=2, d_mlp=8, d_vocab=5, n_ctx=4, n_kv_heads=3)
    with pytest.raises(ValueError, match="attn_windows has 1 entries"):
        ModelConfig(
            d_model=8, n_layers=2, n_heads=4, d_head=2, d_mlp=8, d_vocab=5, n_ctx=4, attn_windows=(3,)
        )
    with pytest.raises(ValueError, match="norm='batchnorm'"):
        ModelConfig(d_model=8, n_layers=1, n_heads=4, d_head=2, d_mlp=8, d_vocab=5, n_ctx=4, norm="batchnorm")
    with pytest.raises(Exception, match="cannot assign"):
        GPT.d_model = 3  # frozen
