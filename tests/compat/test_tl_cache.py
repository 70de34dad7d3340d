"""TL's ActivationCache API on interp's cache, against TransformerLens's own cache on the same weights."""

from __future__ import annotations

import pytest
import torch
from compat_helpers import get_act_name, gpt2, hf_gpt2, hf_llama_gqa, llama, tl_reference

PROMPT = "When John and Mary went to the store, John gave a bag to"
ATOL = dict(atol=3e-5, rtol=0)  # RoPE models differ from TL by ~1e-5 in float32


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def pair(request):
    ours, hf = (gpt2(), hf_gpt2()) if request.param == "gpt2" else (llama(), hf_llama_gqa())
    tokens = ours.to_tokens([PROMPT, "When Tom and Sally went to the park, Tom gave a ball to"])
    ref = tl_reference(hf)
    _, ref_cache = ref.run_with_cache(tokens)
    _, cache = ours.run_with_cache(tokens)
    return ours, cache, ref_cache, tokens


def test_negative_layers_everywhere(pair):
    model, cache, ref, _ = pair
    n = model.cfg.n_layers
    assert cache["resid_post", -1] is cache["resid_post", n - 1]
    torch.testing.assert_close(cache["resid_post", -1], ref["resid_post", -1], **ATOL)
    # decompose_resid(layer=-1) is every layer (TL), not just the embeddings (main's silent bug).
    stack = cache.decompose_resid(layer=-1)
    assert stack.shape[0] == (2 if model.W_pos is not None else 1) + 2 * n
    torch.testing.assert_close(stack.sum(0), cache["resid_post", n - 1], **ATOL)
    torch.testing.assert_close(stack, ref.decompose_resid(layer=-1), **ATOL)
    torch.testing.assert_close(
        cache.apply_ln_to_stack(stack, layer=-1),
        ref.apply_ln_to_stack(ref.decompose_resid(layer=-1), layer=-1),
        **ATOL,
    )


def test_return_labels_gives_a_bare_tensor_unless_asked(pair):
    _, cache, ref, _ = pair
    for method, kw in [("accumulated_resid", {}), ("decompose_resid", {}), ("stack_head_results", {}),
                       ("decompose_resid", {"layer": 1, "mlp_input": True}), ("accumulated_resid", {"incl_mid": True}),
                       ("decompose_resid", {"mode": "attn", "pos_slice": -1}), ("stack_head_results", {"layer": 1})]:  # fmt: skip
        bare = getattr(cache, method)(**kw)
        assert isinstance(bare, torch.Tensor), method
        stack, labels = getattr(cache, method)(return_labels=True, **kw)
        ref_stack, ref_labels = getattr(ref, method)(return_labels=True, **kw)
        assert labels == ref_labels, (method, kw)
        torch.testing.assert_close(stack, ref_stack, **ATOL, msg=f"{method} {kw}")
        torch.testing.assert_close(bare, stack)


def test_apply_ln_equals_tl_with_cached_scales(pair):
    model, cache, ref, _ = pair
    for layer, mlp_input in [(1, False), (1, True), (-1, False)]:
        ours = cache.decompose_resid(layer, mlp_input, apply_ln=True, pos_slice=-1)
        theirs = ref.decompose_resid(layer, mlp_input, apply_ln=True, pos_slice=-1)
        torch.testing.assert_close(ours, theirs, **ATOL)


def test_stack_head_results_with_remainder(pair):
    model, cache, ref, _ = pair
    stack, labels = cache.stack_head_results(layer=-1, incl_remainder=True, return_labels=True, pos_slice=-1)
    ref_stack, ref_labels = ref.stack_head_results(
        layer=-1, incl_remainder=True, return_labels=True, pos_slice=-1
    )
    assert labels == ref_labels and labels[-1] == "remainder"
    torch.testing.assert_close(stack, ref_stack, **ATOL)
    torch.testing.assert_close(stack.sum(0), cache["resid_post", -1][:, -1], **ATOL)
    assert labels[:-1] == model.all_head_labels()


def test_stack_activation_and_neuron_results(pair):
    model, cache, ref, _ = pair
    torch.testing.assert_close(cache.stack_activation("pattern"), ref.stack_activation("pattern"), **ATOL)
    torch.testing.assert_close(
        cache.stack_activation("resid_pre", 1), ref.stack_activation("resid_pre", 1), **ATOL
    )
    neurons, labels = cache.stack_neuron_results(2, pos_slice=-1, return_labels=True)
    ref_neurons, ref_labels = ref.stack_neuron_results(2, pos_slice=-1, return_labels=True)
    assert labels == ref_labels and labels[0] == "L0N0"
    torch.testing.assert_close(neurons, ref_neurons, **ATOL)
    # Invariant: a layer's neurons sum to its MLP output minus b_out.
    d = model.cfg.d_mlp
    torch.testing.assert_close(neurons[:d].sum(0) + model.b_out[0], cache["mlp_out", 0][:, -1], **ATOL)
    some = cache.stack_neuron_results(1, neuron_slice=[0, 5], return_labels=True)
    assert some[1] == ["L0N0", "L0N5"] and some[0].shape[0] == 2


def test_full_resid_decomposition_sums_to_the_residual(pair):
    model, cache, ref, _ = pair
    for expand in (True, False):
        stack, labels = cache.get_full_resid_decomposition(
            expand_neurons=expand, pos_slice=-1, return_labels=True
        )
        ref_stack, ref_labels = ref.get_full_resid_decomposition(
            expand_neurons=expand, pos_slice=-1, return_labels=True
        )
        assert labels == ref_labels
        torch.testing.assert_close(stack, ref_stack, atol=2e-5, rtol=0)
        torch.testing.assert_close(stack.sum(0), cache["resid_post", -1][:, -1], atol=2e-5, rtol=0)
    mid = cache.get_full_resid_decomposition(1, mlp_input=True, expand_neurons=False)
    torch.testing.assert_close(mid.sum(0), cache["resid_mid", 1], atol=2e-5, rtol=0)


def test_attn_shorthand_is_the_stored_pattern_without_a_copy(pair):
    _, cache, _, _ = pair
    pattern = cache["pattern", 0]
    assert cache["attn", 0] is pattern and cache["pattern", 0, "attn"] is pattern
    assert cache["blocks.0.attn.hook_pattern"] is pattern and cache["k0"] is cache["k", 0]
    assert "blocks.0.attn.hook_attn" not in cache and len([k for k in cache if "pattern" in k]) == len(
        cache.model.blocks
    )
    assert cache[get_act_name("attn", 1)] is cache["pattern", 1]


def test_did_you_mean_and_completions(pair):
    _, cache, _, _ = pair
    with pytest.raises(KeyError, match="did you mean 'blocks.1.hook_resid_post'"):
        cache["blocks.1.hook_resid_psot"]
    with pytest.raises(KeyError, match="out of range"):
        cache["resid_pre", -9]
    assert cache._ipython_key_completions_() == list(cache)


def test_compute_head_results(pair):
    model, _, ref, tokens = pair
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_z"))
    cache.compute_head_results()
    ref.compute_head_results()
    for layer in range(model.cfg.n_layers):
        torch.testing.assert_close(cache["result", layer], ref["result", layer], **ATOL)


def test_run_with_cache_remove_batch_dim_and_pos_slice(pair):
    model, full, _, tokens = pair
    _, one = model.run_with_cache(tokens[:1], remove_batch_dim=True)
    assert one["resid_pre", 0].shape == full["resid_pre", 0].shape[1:]
    torch.testing.assert_close(one["pattern", 1], full["pattern", 1][0], **ATOL)
    torch.testing.assert_close(one["result", 1], full["result", 1][0], **ATOL)  # derived after removal
    _, last = model.run_with_cache(tokens, pos_slice=-1)
    torch.testing.assert_close(last["resid_post", 1], full["resid_post", 1][:, -1], **ATOL)
    torch.testing.assert_close(last["z", 0], full["z", 0][:, -1], **ATOL)  # per-head: pos axis -3
    torch.testing.assert_close(last["pattern", 0], full["pattern", 0][:, :, -1], **ATOL)  # query position
    with pytest.raises(ValueError, match="batch of 1"):
        model.run_with_cache(tokens, remove_batch_dim=True)
    _, c = model.run_with_cache(tokens[:1])
    c.remove_batch_dim()
    with pytest.raises(ValueError, match="already removed"):
        c.remove_batch_dim()


def test_run_with_cache_incl_bwd_equals_autograd(pair):
    model, _, _, tokens = pair
    loss, cache = model.run_with_cache(tokens, return_type="loss", incl_bwd=True,
                                       names_filter=lambda n: n.endswith("hook_resid_mid"))  # fmt: skip
    # Reference: autograd of the loss with respect to resid_mid, captured by hand.
    kept = {}

    def keep(x, hook):
        x.retain_grad()
        kept[hook.name] = x

    with model.hooks([(lambda n: n.endswith("hook_resid_mid"), keep)]):
        ref_loss = model(tokens, return_type="loss")
        ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss)
    for name, x in kept.items():
        torch.testing.assert_close(cache[name + "_grad"], x.grad, atol=1e-7, rtol=0)
    model.zero_grad()
    with pytest.raises(ValueError, match="needs a scalar"):
        model.run_with_cache(tokens, incl_bwd=True)
