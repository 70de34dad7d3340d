"""Hooks are scoped: they are removed even when a hook or the forward raises, and bad hooks fail clearly."""

from __future__ import annotations

import pytest
import torch

from interp import HookedTransformer, ModelConfig
from interp.hooks import HookShapeError

CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32, d_vocab=20, n_ctx=8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HookedTransformer(CFG)


TOKS = torch.tensor([[1, 2, 3, 4]])


def boom(x, hook):
    raise RuntimeError("hook failed")


def test_hooks_removed_after_exception_many_times(model):
    clean = model(TOKS)
    for _ in range(50):
        with pytest.raises(RuntimeError, match="hook failed"):
            model.run_with_hooks(
                TOKS, fwd_hooks=[("blocks.0.hook_resid_mid", boom), ("blocks.1.attn.hook_pattern", boom)]
            )
        with pytest.raises(RuntimeError, match="hook failed"), model.hooks([(lambda n: "mlp" in n, boom)]):
            model(TOKS)
        with pytest.raises(KeyError), model.hooks([("blocks.0.hook_resid_pre", lambda x, h: None)]):
            raise KeyError("the block itself raised")
    assert model.hook_count() == 0
    torch.testing.assert_close(model(TOKS), clean)


def test_unknown_hook_name_suggests_nearest(model):
    with pytest.raises(KeyError, match="did you mean blocks.0.hook_resid_pre"):
        model.run_with_hooks(TOKS, fwd_hooks=[("blocks.0.hook_resid_pree", lambda x, h: None)])
    with pytest.raises(KeyError, match="unknown hook name"):
        model.run_with_cache(TOKS, names_filter=["blocks.9.hook_resid_pre"])
    assert model.hook_count() == 0


def test_bad_name_attaches_nothing(model):
    """Validation happens before attaching: a good hook listed before a bad one is not left behind."""
    calls = []
    with pytest.raises(KeyError):
        with model.hooks(
            [("blocks.0.hook_resid_pre", lambda x, h: calls.append(1)), ("nope", lambda x, h: None)]
        ):
            pass
    model(TOKS)
    assert calls == [] and model.hook_count() == 0


def test_wrong_shape_from_hook(model):
    with pytest.raises(HookShapeError, match=r"blocks\.1\.hook_mlp_out returned \(1, 4, 15\)"):
        model.run_with_hooks(TOKS, fwd_hooks=[("blocks.1.hook_mlp_out", lambda x, h: x[..., :15])])
    assert model.hook_count() == 0
    assert model(TOKS).shape == (1, 4, 20)


def test_backward_hooks_fire_inside_and_not_after(model):
    grads = {}

    def save(g, hook):
        grads[hook.name] = g.clone()

    model.run_with_hooks(
        TOKS, bwd_hooks=[("blocks.0.hook_resid_post", save)], backward_metric=lambda out: out[0, -1, 3]
    )
    assert grads["blocks.0.hook_resid_post"].shape == (1, 4, 16)
    # The gradient equals autograd's own.
    resid = model(TOKS, stop_at_layer=1).detach().requires_grad_(True)
    model(resid, start_at_layer=1)[0, -1, 3].backward()
    torch.testing.assert_close(grads["blocks.0.hook_resid_post"], resid.grad)
    grads.clear()
    with model.hooks(bwd_hooks=[("blocks.0.hook_resid_post", save)]):
        out = model(TOKS)
    out[0, -1, 3].backward()  # after the scope closed: the hook must not fire
    assert grads == {} and model.hook_count() == 0


def test_bwd_hooks_without_metric_is_an_error(model):
    with pytest.raises(ValueError, match="backward_metric"):
        model.run_with_hooks(TOKS, bwd_hooks=[("blocks.0.hook_resid_post", lambda g, h: None)])


def test_filters_select_hooks(model):
    _, cache = model.run_with_cache(TOKS, names_filter=lambda n: n.endswith("resid_pre"))
    assert list(cache) == ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre"]
    _, cache = model.run_with_cache(TOKS, names_filter="blocks.1.attn.hook_pattern")
    assert list(cache) == ["blocks.1.attn.hook_pattern"]


def test_fast_path_when_pattern_not_needed(model, monkeypatch):
    """Only hooks on scores or pattern force the explicit path; a resid-only cache keeps SDPA."""
    calls = {"explicit": 0}
    attn_cls = type(model.blocks[0].attn)
    original = attn_cls._explicit

    def counting(self, *a):
        calls["explicit"] += 1
        return original(self, *a)

    monkeypatch.setattr(attn_cls, "_explicit", counting)
    model.run_with_cache(TOKS, names_filter=lambda n: "resid" in n or "result" in n)
    assert calls["explicit"] == 0
    model.run_with_cache(TOKS, names_filter="blocks.0.attn.hook_pattern")
    assert calls["explicit"] == 1
