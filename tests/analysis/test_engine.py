"""The sweep engine: where forwards start, which cells it skips, readouts, bound metrics, non-finite values."""

from __future__ import annotations

import copy

import pytest
import torch
from analysis_helpers import gpt2_like, token_pair

from interp.analysis import (
    MLP,
    Activation,
    Head,
    Neuron,
    NonFiniteError,
    Resid,
    ResidMid,
    ResidPost,
    ResidPre,
    causal_trace,
    denoise,
    knockout,
    logit_diff,
    logit_lens,
    neuron_effects,
    patch,
    patch_from,
    scale,
    steering_vector,
    sweep,
    zero,
)
from interp.analysis.engine import prepare


def count_calls(model, names):
    calls = dict.fromkeys(names, 0)

    def hook(x, hook):
        calls[hook.name] += 1

    return calls, [(n, hook) for n in names]


def test_forwards_start_at_the_first_edited_layer():
    model = gpt2_like()
    clean, corrupted = token_pair(model)
    calls, hooks = count_calls(model, [f"blocks.{layer}.hook_resid_pre" for layer in range(3)])
    with model.hooks(hooks):
        df = denoise(
            model, clean, corrupted, Head.every(model, layers=[2]) + [[MLP(1), Head(2, 0)]], logit_diff(1, 2)
        )
    # The reference run passes every block once; the cells' forwards start at block 2 (heads) or 1 (the group).
    assert calls == {"blocks.0.hook_resid_pre": 1, "blocks.1.hook_resid_pre": 2, "blocks.2.hook_resid_pre": 3}
    assert df.attrs["n_forward"] == 3


def test_no_op_cells_get_no_forward():
    model = gpt2_like()
    clean, corrupted = token_pair(model, n_pos=5)  # they differ at positions 1 and 3
    sites = ResidPre.every(model, 5)
    df = denoise(
        model, clean, corrupted, sites, logit_diff(3, 5), max_rows=clean.shape[0]
    )  # one cell a forward
    noop = (df.pos == 0) | ((df.layer == 0) & df.pos.isin([2, 4]))
    assert df.attrs["n_skipped"] == noop.sum() == 5
    assert df.attrs["n_forward"] == 1 + len(sites) - 5
    # scale(1) and zero at an all-zero slice change nothing either
    prompt = prepare(model, clean)
    run = sweep(
        model, prompt, [[(MLP(1), scale(1.0))], [(MLP(1), scale(2.0))], [(MLP(1), zero())]], logit_diff(3, 5)
    )
    assert run.skipped == [True, False, False] and run.n_forward == 2


def test_activation_readout_for_a_probe():
    """A metric on any activation: here a linear probe on resid_post of block 1, under patching."""
    model = gpt2_like()
    clean, corrupted = token_pair(model)
    w = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    probe = ResidPost(1, pos=-1)
    run = sweep(
        model,
        prepare(model, corrupted),
        [[(ResidPre(1, pos=3), patch_from(clean))], [(Head(0, 2), patch_from(clean))]],
        lambda x: x @ w,
        readout=Activation(probe),
    )
    _, clean_cache = model.run_with_cache(clean)

    def restore(act, hook):
        act = act.clone()
        act[:, 3] = clean_cache["resid_pre", 1][:, 3]
        return act

    with model.hooks([("blocks.1.hook_resid_pre", restore)]):
        _, cache = model.run_with_cache(corrupted)
    torch.testing.assert_close(run.values[0], cache["resid_post", 1][:, -1] @ w, atol=1e-5, rtol=1e-5)
    _, base_cache = model.run_with_cache(corrupted)
    torch.testing.assert_close(run.base, base_cache["resid_post", 1][:, -1] @ w, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(run.values[0], run.base)  # the readout follows the edit


def test_metric_objects_are_bound_to_the_model():
    model = gpt2_like()
    clean, corrupted = token_pair(model)
    bound = []

    class Unbound:
        def bind(self, m):
            bound.append(m)
            return logit_diff(3, 4)

    got = denoise(model, clean, corrupted, [ResidPre(1, 3)], Unbound())
    assert bound and bound[0] is model
    assert (
        got["metric"].tolist()
        == denoise(model, clean, corrupted, [ResidPre(1, 3)], logit_diff(3, 4))["metric"].tolist()
    )


def test_a_transformer_lens_metric_gets_a_shape_error():
    model = gpt2_like()
    clean, corrupted = token_pair(model)
    with pytest.raises(ValueError, match=r"expects \[batch, pos, d_vocab\]: drop the position index"):
        denoise(model, clean, corrupted, [ResidPre(1, 3)], lambda logits: logits[:, -1, 3] - logits[:, -1, 4])


def test_non_finite_values_say_where_they_began():
    model = gpt2_like()
    clean, corrupted = token_pair(model)
    with pytest.raises(NonFiniteError, match="first non-finite activation is blocks.1.hook_mlp_out"):
        sweep(model, prepare(model, clean), [[(MLP(1), scale(float("nan")))]], logit_diff(3, 4))
    with pytest.raises(NonFiniteError, match="the metric itself produced it"):
        patch(model, clean, corrupted, [ResidPre(1, 3)], lambda logits: logits[:, 3].log() * 0 + float("nan"))
    broken = copy.deepcopy(model)
    with torch.no_grad():
        broken.blocks[0].mlp.W_out[3, 0] = float("inf")
    with pytest.raises(
        NonFiniteError, match="for the base run; the first non-finite activation is blocks.0.hook_mlp_out"
    ):
        denoise(broken, clean, corrupted, [ResidPre(1, 3)], logit_diff(3, 4))
    # NaN on purpose: no clean-corrupted gap to normalise by
    same = denoise(model, clean, clean, [ResidPre(1, 3)], logit_diff(3, 4))
    assert same["normalized"].isna().all()


def test_deprecated_names_still_work():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=1, n_pos=6)
    assert Resid(1, 2) == ResidPre(1, 2) and Resid(1, 2, "mid") == ResidMid(1, 2)
    assert Resid.every(model, 2, stage="post") == ResidPost.every(model, 2)
    with pytest.raises(ValueError, match="stage must be"):
        Resid(0, stage="middle")  # type: ignore[arg-type]
    old = causal_trace(model, tokens, (2, 4), target=9, kind="mlp", n_samples=2)
    new = causal_trace(model, tokens, (2, 4), answer=9, site=MLP, n_samples=2)
    assert old["p_restored"].tolist() == new["p_restored"].tolist()
    assert knockout(model, tokens, [1], [0], target_pos=4) == knockout(model, tokens, [1], [0], read_pos=4)
    assert logit_lens(model, tokens, positions="last").equals(logit_lens(model, tokens, read_pos=None))
    assert logit_lens(model, tokens, target=3, positions=None).equals(logit_lens(model, tokens, answer=3))
    old = neuron_effects(model, tokens, [Neuron(1, 2)], target=3)
    assert old.equals(neuron_effects(model, tokens, [Neuron(1, 2)], answer=3))
    torch.testing.assert_close(
        steering_vector(model, tokens, tokens.flip(1), 1, pos=None),
        steering_vector(model, tokens, tokens.flip(1), 1, read_pos="all"),
    )
    zero()  # the factories take no model: a notebook can build them once and reuse them
