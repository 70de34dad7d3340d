"""Hooks are scoped: they are removed even when a hook or the forward raises, and bad hooks fail clearly."""

from __future__ import annotations

import pytest
import torch

from interp import HookedTransformer, ModelConfig
from interp.hooks import HookDtypeError, HookRangeError, HookShapeError

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


# ---- wrong arguments are specific errors, and leave the model unchanged ----------------------------------
def test_start_after_stop_is_an_error(model):
    resid = model(TOKS, stop_at_layer=1)
    with pytest.raises(ValueError, match=r"start_at_layer=2 is after stop_at_layer=1"):
        model(resid, start_at_layer=2, stop_at_layer=1)
    with pytest.raises(ValueError, match=r"start must be <= stop"):
        model.run_with_cache(resid, start_at_layer=-1, stop_at_layer=0)
    # start == stop is an empty range, not an error: the input comes back.
    assert model(resid, start_at_layer=1, stop_at_layer=1) is resid
    assert model.hook_count() == 0


@pytest.mark.parametrize("bad", ["logit", "Logits", "tokens", 1])
def test_return_type_typo_is_an_error(model, bad):
    with pytest.raises(ValueError, match=r"return_type=.*allowed: 'logits', 'loss', 'both' or None"):
        model(TOKS, return_type=bad)
    logits, loss = model(TOKS, return_type="both")
    torch.testing.assert_close(logits, model(TOKS))
    torch.testing.assert_close(loss, model(TOKS, return_type="loss"))


def test_explicit_hook_outside_the_run_range_raises(model):
    fired = []

    def note(x, hook):
        fired.append(hook.name)

    resid = model(TOKS, stop_at_layer=1)
    with pytest.raises(HookRangeError, match=r"blocks\.1\.hook_resid_post never run"):
        model.run_with_hooks(TOKS, fwd_hooks=[("blocks.1.hook_resid_post", note)], stop_at_layer=1)
    with pytest.raises(HookRangeError, match=r"hook_embed never run"):
        model.run_with_hooks(resid, fwd_hooks=[("hook_embed", note)], start_at_layer=1)
    with pytest.raises(HookRangeError, match=r"blocks\.0\.hook_mlp_out"):
        model.run_with_hooks(resid, fwd_hooks=[("blocks.0.hook_mlp_out", note)], start_at_layer=1)
    with pytest.raises(HookRangeError, match=r"ln_final\.hook_scale"):
        model.run_with_hooks(TOKS, fwd_hooks=[("ln_final.hook_scale", note)], stop_at_layer=2)
    assert fired == [] and model.hook_count() == 0
    # In range they fire; filters may select points that do not run (only those that run fire).
    model.run_with_hooks(resid, fwd_hooks=[("blocks.1.hook_resid_post", note)], start_at_layer=1)
    model.run_with_hooks(TOKS, fwd_hooks=[(lambda n: n.endswith("resid_post"), note)], stop_at_layer=1)
    assert fired == ["blocks.1.hook_resid_post", "blocks.0.hook_resid_post"]


def test_wrong_dtype_from_hook_names_the_hook(model):
    def to_double(x, hook):
        return x.double()

    with pytest.raises(
        HookDtypeError, match=r"hook 'to_double' on blocks\.0\.hook_resid_mid returned a torch\.float64"
    ):
        model.run_with_hooks(TOKS, fwd_hooks=[("blocks.0.hook_resid_mid", to_double)])
    assert model.hook_count() == 0
    torch.testing.assert_close(model(TOKS), model.run_with_hooks(TOKS, fwd_hooks=[]))


def test_backward_hook_returning_a_non_tensor(model):
    def bad(g, hook):
        return "oops"

    with pytest.raises(
        HookShapeError, match=r"backward hook 'bad' on blocks\.0\.hook_resid_post returned str"
    ):
        model.run_with_hooks(
            TOKS, bwd_hooks=[("blocks.0.hook_resid_post", bad)], backward_metric=lambda out: out[0, -1, 3]
        )
    with pytest.raises(HookDtypeError, match=r"backward hook .* gradient is torch\.float32"):
        model.run_with_hooks(
            TOKS,
            bwd_hooks=[("blocks.0.hook_resid_post", lambda g, h: g.double())],
            backward_metric=lambda out: out[0, -1, 3],
        )
    assert model.hook_count() == 0


# ---- TransformerLens hook semantics -----------------------------------------------------------------------
def test_hook_layer_and_scoped_ctx(model):
    assert model.blocks[1].attn.hook_pattern.layer() == 1
    with pytest.raises(ValueError, match="not inside a block"):
        model.hook_embed.layer()
    grads = {}

    def keep(x, hook):
        hook.ctx["act"] = x.detach()

    def grad_times_act(g, hook):
        grads[hook.layer()] = (g * hook.ctx["act"]).sum()

    name = "blocks.1.hook_resid_pre"
    model.run_with_hooks(
        TOKS, [(name, keep)], [(name, grad_times_act)], backward_metric=lambda o: o[0, -1, 3]
    )
    resid = model(TOKS, stop_at_layer=1).detach().requires_grad_(True)
    model(resid, start_at_layer=1)[0, -1, 3].backward()
    torch.testing.assert_close(grads[1], (resid.grad * resid).sum())
    assert model.blocks[1].hook_resid_pre.ctx == {}  # the run's context ended with the run


def test_persistent_hooks_tl_semantics(model):
    clean = model(TOKS)
    calls = []

    def count(x, hook):
        calls.append(hook.name)

    def zero(x, hook):
        return torch.zeros_like(x)

    try:
        model.blocks[0].hook_resid_mid.add_hook(count)
        model.add_hook(lambda n: n.endswith("hook_mlp_out"), count)
        model.add_perma_hook("blocks.1.hook_attn_out", zero)
        assert model.hook_count() == 4 and model.blocks[0].hook_resid_mid.fwd_hooks == [count]
        with model.hooks([("blocks.1.hook_attn_out", zero)]):
            zeroed = model(TOKS)
        assert calls == ["blocks.0.hook_resid_mid", "blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out"]
        assert not torch.equal(zeroed, clean)
        torch.testing.assert_close(model(TOKS), zeroed)  # persistent: outlives every scope
        model.reset_hooks()  # non-permanent ones go; the permanent one stays
        assert model.hook_count() == 1
        torch.testing.assert_close(model(TOKS), zeroed)
        model.blocks[1].hook_attn_out.remove_hooks("fwd")
        assert model.hook_count() == 1  # permanent needs including_permanent
        model.blocks[1].hook_attn_out.remove_hooks("fwd", including_permanent=True)
        assert model.hook_count() == 0
        torch.testing.assert_close(model(TOKS), clean)
        model.add_hook("blocks.0.hook_resid_pre", count, dir="bwd")
        model.add_hook("blocks.0.hook_resid_pre", count, level=3)
        model.remove_all_hook_fns("bwd")
        assert model.hook_count() == 1
        model.remove_all_hook_fns(level=2)
        assert model.hook_count() == 1
        model.remove_all_hook_fns(level=3)
        assert model.hook_count() == 0
        with pytest.raises(KeyError, match="unknown hook name"):
            model.add_hook("blocks.0.hook_resid_pree", count)
        with pytest.raises(ValueError, match="direction"):
            model.add_hook("blocks.0.hook_resid_pre", count, dir="up")
        assert model.hook_count() == 0
    finally:
        model.reset_hooks(including_permanent=True)


def test_run_with_hooks_reset_hooks_end_false(model):
    """TL: the hooks stay (model-wide), so a backward after the call reaches the backward hooks."""
    grads = {}

    def save(g, hook):
        grads[hook.name] = g.clone()

    def ctx_count(x, hook):
        hook.ctx["n"] = hook.ctx.get("n", 0) + 1

    try:
        out = model.run_with_hooks(
            TOKS,
            fwd_hooks=[("blocks.0.hook_resid_pre", ctx_count)],
            bwd_hooks=[("blocks.0.hook_resid_post", save)],
            reset_hooks_end=False,
        )
        out[0, -1, 3].backward()
        assert grads["blocks.0.hook_resid_post"].shape == (1, 4, 16)
        assert model.hook_count() == 2
        model(TOKS)
        assert model.blocks[0].hook_resid_pre.ctx == {"n": 2}  # persistent hooks: the model-wide ctx
        model.run_with_hooks(TOKS, clear_contexts=True)
        assert model.blocks[0].hook_resid_pre.ctx == {}
        model.reset_hooks()
        assert model.hook_count() == 0
    finally:
        model.reset_hooks(including_permanent=True)


def test_outer_scope_hooks_that_already_fired_may_precede_a_partial_run(model):
    """A residual computed under the outer hook carries its effect; starting after it is not an error."""

    def double(x, hook):
        return 2 * x

    with model.hooks([("blocks.0.hook_mlp_out", double)]):
        resid = model(TOKS, stop_at_layer=1)
        full = model(TOKS)
        torch.testing.assert_close(model(resid, start_at_layer=1), full, atol=1e-6, rtol=0)
    with pytest.raises(HookRangeError), model.hooks([("blocks.0.hook_mlp_out", double)]):
        model(resid, start_at_layer=1)  # never fired in this scope: silently skipped before
