"""HookPoints are visible to PyTorch: torch module and global hooks, nnsight and captum all see them."""

from __future__ import annotations

import pytest
import torch
from torch.nn.modules.module import register_module_forward_hook

from interp import HookedTransformer, ModelConfig

CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32, d_vocab=20, n_ctx=8)
TOKS = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
NAME = "blocks.1.hook_resid_mid"


def make_model() -> HookedTransformer:
    torch.manual_seed(0)
    m = HookedTransformer(CFG)
    m.init_weights(std=0.3, seed=0)
    return m.eval()


@pytest.fixture
def model():
    return make_model()


def zero_pos2(x, hook=None):
    x = x.clone()
    x[:, 2] = 0
    return x


def test_torch_module_hooks_fire_and_edit(model):
    seen = {}
    point = model.hook_dict[NAME]
    h1 = point.register_forward_pre_hook(lambda mod, args: seen.setdefault("pre", args[0].clone()))
    h2 = point.register_forward_hook(lambda mod, args, out: zero_pos2(out))
    try:
        edited = model(TOKS)
    finally:
        h1.remove(), h2.remove()
    _, cache = model.run_with_cache(TOKS, names_filter=NAME)  # same paths: only NAME is watched / hooked
    torch.testing.assert_close(seen["pre"], cache[NAME], atol=0, rtol=0)
    torch.testing.assert_close(
        edited, model.run_with_hooks(TOKS, fwd_hooks=[(NAME, zero_pos2)]), atol=0, rtol=0
    )
    assert not point.watched and not torch.equal(model(TOKS), edited)  # back on the fast path


def test_torch_full_backward_hook_equals_interp_gradient(model):
    grads = {}
    point = model.hook_dict[NAME]

    def keep(mod, grad_in, grad_out):
        grads["torch"] = grad_out[0].clone()

    handle = point.register_full_backward_hook(keep)
    try:
        model(TOKS)[:, -1, 3].sum().backward()
    finally:
        handle.remove()
    model.run_with_hooks(
        TOKS,
        bwd_hooks=[(NAME, lambda g, h: grads.setdefault("interp", g.clone()))],
        backward_metric=lambda out: out[:, -1, 3].sum(),
    )
    torch.testing.assert_close(grads["torch"], grads["interp"], atol=0, rtol=0)


def test_global_forward_hooks_fire_on_hook_points(model):
    names = []
    handle = register_module_forward_hook(lambda mod, args, out: names.append(getattr(mod, "name", None)))
    try:
        model(TOKS)
    finally:
        handle.remove()
    assert NAME in names and "blocks.0.attn.hook_z" in names
    # A global hook watches everything, so the gated points run too (explicit attention, norms, results).
    assert "blocks.0.attn.hook_pattern" in names and "blocks.1.attn.hook_result" in names
    assert not model.hook_dict[NAME].watched


def test_nnsight_read_and_in_place_edit_equal_interp_hooks():
    nnsight = pytest.importorskip("nnsight")  # a dev dependency; importorskip only guards odd installs
    model = make_model()
    # nnsight instruments every module, so every point runs (explicit attention, per-head results): the
    # references hook every point too, which takes the same code paths.
    with model.hooks([(lambda n: True, lambda x, hook: None)]):
        _, cache = model.run_with_cache(TOKS)
        clean = model(TOKS)
        edited_ref = model.run_with_hooks(TOKS, fwd_hooks=[(NAME, zero_pos2)])
    wrapped = nnsight.NNsight(model)
    with wrapped.trace(TOKS):
        pattern = wrapped.blocks[0].attn.hook_pattern.output.save()
        act = wrapped.blocks[1].hook_resid_mid.output.save()
        out = wrapped.output.save()
    with wrapped.trace(TOKS):
        wrapped.blocks[1].hook_resid_mid.output[:, 2] = 0
        edited = wrapped.output.save()
    torch.testing.assert_close(act, cache[NAME], atol=0, rtol=0)
    torch.testing.assert_close(pattern, cache["pattern", 0], atol=0, rtol=0)
    torch.testing.assert_close(out, clean, atol=0, rtol=0)
    torch.testing.assert_close(edited, edited_ref, atol=0, rtol=0)
    assert not torch.equal(edited, clean)


def test_captum_layer_integrated_gradients_equal_riemann_sum(model):
    captum_attr = pytest.importorskip("captum.attr")
    target, steps = 4, 16
    baseline = torch.zeros_like(TOKS)

    def last_logits(tokens):
        return model(tokens)[:, -1, :]

    lig = captum_attr.LayerIntegratedGradients(last_logits, model.hook_dict[NAME])
    attr = lig.attribute(TOKS, baselines=baseline, target=target, n_steps=steps, method="riemann_right")

    # By hand: interpolate the hook's activation from the baseline's to the input's, average the gradients.
    _, run = model.run_with_cache(TOKS, names_filter=NAME)
    _, base = model.run_with_cache(baseline, names_filter=NAME)
    act, act0 = run[NAME], base[NAME]
    total = torch.zeros_like(act)
    for k in range(1, steps + 1):
        x = (act0 + k / steps * (act - act0)).requires_grad_(True)
        logits = model.run_with_hooks(TOKS, fwd_hooks=[(NAME, lambda a, h, x=x: x)])
        (grad,) = torch.autograd.grad(logits[:, -1, target].sum(), x)
        total += grad
    expected = (act - act0) * total / steps
    assert attr.shape == act.shape and expected.abs().max() > 1e-3
    torch.testing.assert_close(attr, expected, atol=1e-4, rtol=0)
