"""ActivationCache: shorthand keys, decompositions that sum to the residual, DLA, and honest memory."""

from __future__ import annotations

import pytest
import torch
from conftest import make_hf

import interp


@pytest.fixture(scope="module")
def model():
    return interp.load(make_hf("gpt2"))


@pytest.fixture(scope="module")
def run(model):
    toks = torch.randint(0, 96, (2, 7), generator=torch.Generator().manual_seed(0))
    logits, cache = model.run_with_cache(toks)
    return toks, logits, cache


def test_shorthand_keys(run):
    _, _, cache = run
    assert cache["resid_pre", 1] is cache["blocks.1.hook_resid_pre"]
    assert cache["pattern", 0] is cache["blocks.0.attn.hook_pattern"]
    assert cache["scale", 1, "ln2"] is cache["blocks.1.ln2.hook_scale"]
    assert cache["scale"] is cache["ln_final.hook_scale"]
    assert cache["embed"] is cache["hook_embed"]
    with pytest.raises(KeyError, match="needs a layer"):
        cache["resid_pre"]
    with pytest.raises(KeyError, match="unknown activation shorthand 'resid'"):
        cache["resid", 0]


@pytest.mark.parametrize("layer", [0, 1, 2, None])
def test_decompose_resid_sums_to_residual(model, run, layer):
    _, _, cache = run
    stack, labels = cache.decompose_resid(layer, return_labels=True)
    target = cache["resid_post", 2] if layer is None else cache["resid_pre", layer]
    torch.testing.assert_close(stack.sum(0), target, atol=1e-5, rtol=0)
    assert labels[:2] == ["embed", "pos_embed"] and len(labels) == stack.shape[0]
    mid, _ = cache.decompose_resid(1, mlp_input=True, return_labels=True)
    torch.testing.assert_close(mid.sum(0), cache["resid_mid", 1], atol=1e-5, rtol=0)


def test_stack_head_results_sum_to_attn_out(model, run):
    _, _, cache = run
    stack, labels = cache.stack_head_results(return_labels=True)
    assert labels[:2] == ["L0H0", "L0H1"] and stack.shape == (3 * 4, 2, 7, 32)
    for layer in range(3):
        heads = stack[4 * layer : 4 * (layer + 1)].sum(0) + model.blocks[layer].attn.b_O
        torch.testing.assert_close(heads, cache["attn_out", layer], atol=1e-5, rtol=0)
    # Without hook_result in the cache, results are computed from z and W_O.
    _, z_only = model.run_with_cache(run[0], names_filter=lambda n: n.endswith("hook_z"))
    torch.testing.assert_close(z_only.stack_head_results(return_labels=True)[0], stack, atol=1e-6, rtol=0)


def test_accumulated_resid_and_logit_lens_final_layer(model, run):
    toks, logits, cache = run
    stack, labels = cache.accumulated_resid(apply_ln=True, pos_slice=-1, return_labels=True)
    assert labels == ["0_pre", "1_pre", "2_pre", "final_post"]
    # At the unembed each state goes through ln_final itself (weight, bias, its own statistics): the
    # logit lens. The last row through W_U is the model's own logits.
    torch.testing.assert_close(stack[-1] @ model.W_U, logits[:, -1], atol=1e-5, rtol=0)
    for i in range(3):
        x = cache["resid_pre", i][:, -1]
        by_hand = (x - x.mean(-1, keepdim=True)) / (x.var(-1, correction=0, keepdim=True) + 1e-5).sqrt()
        torch.testing.assert_close(stack[i], by_hand * model.ln_final.w + model.ln_final.b, atol=1e-5, rtol=0)
    # Below the unembed: the cached scale of the layer's ln1, no weight (as apply_ln_to_stack).
    below = cache.accumulated_resid(2, apply_ln=True, pos_slice=-1)
    x = cache["resid_pre", 1][:, -1]
    torch.testing.assert_close(
        below[1], (x - x.mean(-1, keepdim=True)) / cache["scale", 2][:, -1], atol=1e-6, rtol=0
    )


def test_direct_logit_attrs_sum_to_logit(model, run):
    toks, logits, cache = run
    target = toks[:, -1]
    stack = cache.decompose_resid(pos_slice=-1)
    attrs = cache.direct_logit_attrs(stack, target, pos_slice=-1)
    constant = model.ln_final.b @ model.W_U[:, target]  # not attributable to any component
    torch.testing.assert_close(
        attrs.sum(0) + constant, logits[torch.arange(2), -1, target], atol=1e-4, rtol=0
    )
    diff = cache.direct_logit_attrs(stack, target, incorrect_tokens=torch.tensor([5, 6]), pos_slice=-1)
    wanted = logits[torch.arange(2), -1, target] - logits[torch.arange(2), -1, torch.tensor([5, 6])]
    constant = model.ln_final.b @ (model.W_U[:, target] - model.W_U[:, torch.tensor([5, 6])])
    torch.testing.assert_close(diff.sum(0) + constant, wanted, atol=1e-4, rtol=0)


def test_logit_attrs_is_transformer_lens_meaning(model, run):
    """TL's logit_attrs: the raw stack over ln_final's cached scale, dotted with W_U columns (no weight)."""
    toks, _, cache = run
    target = toks[:, -1]
    stack = cache.decompose_resid(pos_slice=-1)
    centred = stack - stack.mean(-1, keepdim=True)
    by_hand = (centred / cache["scale"][:, -1] * model.W_U[:, target].T).sum(-1)
    torch.testing.assert_close(cache.logit_attrs(stack, target, pos_slice=-1), by_hand, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="same shape"):
        cache.logit_attrs(stack, target, incorrect_tokens=5, pos_slice=-1)
    with pytest.raises(ValueError, match="do not line up"):
        cache.logit_attrs(cache.decompose_resid(), target)  # [batch] tokens against a stack with positions


def test_no_two_keys_share_storage(run):
    _, _, cache = run
    assert cache.nbytes == cache.unique_nbytes()
    # resid_post[0] and resid_pre[1] hold equal values in separate buffers.
    assert torch.equal(cache["resid_post", 0], cache["resid_pre", 1])
    assert cache["resid_post", 0].data_ptr() != cache["resid_pre", 1].data_ptr()


def test_to_device_and_cache_device(model, run):
    _, _, cache = run
    assert cache.to("cpu") is cache
    _, meta_cache = model.run_with_cache(run[0], names_filter="blocks.0.hook_resid_pre", device="meta")
    assert meta_cache["resid_pre", 0].device.type == "meta"


def test_deferred_head_results_equal_the_forwards_own(model, run):
    """A user hook on hook_result makes the forward compute it; the same run otherwise defers it."""
    toks = run[0]
    _, cache = model.run_with_cache(toks)
    with model.hooks([(lambda n: n.endswith("hook_result"), lambda x, hook: None)]):
        _, eager = model.run_with_cache(toks)
    assert all(f"blocks.{i}.attn.hook_result" in eager._store for i in range(3))  # computed in the forward
    held = cache.nbytes
    # Layer 0 sees identical inputs: bitwise equal. Later layers differ in the last bit only, because an
    # eager forward sums per-head results into attn_out where the deferred one uses the fused matmul.
    torch.testing.assert_close(cache["result", 0], eager["result", 0], atol=0, rtol=0)
    for layer in range(3):
        torch.testing.assert_close(cache["result", layer], eager["result", layer], atol=1e-6, rtol=0)
        W_O = model.blocks[layer].attn.W_O
        torch.testing.assert_close(
            cache["result", layer], torch.einsum("bphd,hdm->bphm", cache["z", layer], W_O)
        )
    assert cache.nbytes > held  # derived on first read, then held like any other key
    assert cache.nbytes == cache.unique_nbytes()


def test_result_only_cache_hides_the_z_it_derives_from(model, run):
    toks = run[0]
    _, cache = model.run_with_cache(toks, names_filter="blocks.1.attn.hook_result")
    assert list(cache) == ["blocks.1.attn.hook_result"] and "blocks.1.attn.hook_z" not in cache
    with pytest.raises(KeyError, match="not in this cache"):
        cache["z", 1]
    assert cache["result", 1].shape == (2, 7, 4, 32)


def test_deferred_result_refuses_changed_weights(run):
    model = interp.load(make_hf("gpt2"))
    _, cache = model.run_with_cache(run[0], names_filter="blocks.0.attn.hook_result")
    with torch.no_grad():
        model.blocks[0].attn.W_O.mul_(2)
    with pytest.raises(RuntimeError, match="W_O was modified after the run"):
        cache["result", 0]


def test_partial_run_cache_holds_exactly_what_it_reports(model, run):
    toks, _, full = run
    _, cache = model.run_with_cache(toks, stop_at_layer=1)
    held = [k for k in full if k.startswith(("hook_", "blocks.0."))]
    assert list(cache) == held and len(cache) == len(held) == 20  # layer 0 and the embeddings
    assert "blocks.0.hook_resid_post" in cache and "blocks.1.hook_resid_pre" not in cache
    for k in held:
        torch.testing.assert_close(cache[k], full[k], atol=0, rtol=0)
    with pytest.raises(KeyError, match=r"'blocks.1.hook_resid_pre' is not in this cache, which holds 20"):
        cache["resid_pre", 1]
    resid = full["resid_pre", 1]
    _, late = model.run_with_cache(resid, start_at_layer=1, names_filter=lambda n: "resid" in n)
    assert list(late) == [k for k in full if "resid" in k and not k.startswith("blocks.0.")]
    # fused kernels here, the explicit paths in the all-hooks run: equal to float precision
    torch.testing.assert_close(late["resid_post", 2], full["resid_post", 2], atol=1e-5, rtol=0)


def test_partial_run_cache_refuses_explicit_names_it_cannot_fill(model, run):
    from interp.hooks import HookRangeError

    with pytest.raises(HookRangeError, match=r"blocks\.2\.hook_resid_post never run"):
        model.run_with_cache(
            run[0], names_filter=["blocks.0.attn.hook_z", "blocks.2.hook_resid_post"], stop_at_layer=2
        )
    assert model.hook_count() == 0


def test_deferred_result_refuses_data_edits(run):
    """`.data` edits do not bump W_O._version; the fingerprint still sees them."""
    model = interp.load(make_hf("gpt2"))
    _, cache = model.run_with_cache(
        run[0], names_filter=["blocks.0.attn.hook_result", "blocks.1.attn.hook_result"]
    )
    model.blocks[0].attn.W_O.data.mul_(2)
    model.blocks[1].attn.W_O.data[1, 3, 5] += 0.5  # one element
    for layer in (0, 1):
        with pytest.raises(RuntimeError, match="W_O was modified after the run"):
            cache["result", layer]
    model.blocks[0].attn.W_O.data.div_(2)  # restored exactly (powers of two): derivable again, and right
    _, eager = model.run_with_cache(run[0], names_filter="blocks.0.attn.hook_z")
    torch.testing.assert_close(
        cache["result", 0], torch.einsum("bphd,hdm->bphm", eager["z", 0], model.blocks[0].attn.W_O)
    )
