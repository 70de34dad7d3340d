"""Each edit factory against a hand-written hook; absolute positions against a forward that starts late."""

from __future__ import annotations

import pytest
import torch
from analysis_helpers import gpt2_like, token_pair

from interp.analysis import (
    MLP,
    Edge,
    Embed,
    Head,
    Neuron,
    ResidMid,
    ResidPre,
    add,
    add_noise,
    edited,
    knock_out,
    mean_of,
    patch_from,
    resample_from,
    scale,
    zero,
)
from interp.analysis.edits import At
from interp.analysis.engine import edit_hooks
from interp.layers.sequence_info import SequenceInfo, running


def hand(model, tokens, name, fn):
    """Logits with `fn(act)` (in place, on a copy) at hook `name`, written out by hand."""

    def hook(act, hook):
        act = act.clone()
        fn(act)
        return act

    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(name, hook)])


def with_edit(model, tokens, site, edit):
    with edited(model, [(site, edit)]), torch.no_grad():
        return model(tokens)


def test_each_edit_equals_its_hand_written_hook():
    model = gpt2_like()
    tokens, other = token_pair(model, batch=2, n_pos=6, seed=1)
    vec = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(2))
    noise = torch.randn(2, 2, model.cfg.d_model, generator=torch.Generator().manual_seed(3))
    _, ref = model.run_with_cache(other)

    def set_(index, value):
        def fn(a):
            a[index] = value(a) if callable(value) else value

        return fn

    cases = [
        (Head(1, 2, pos=3), zero(), "blocks.1.attn.hook_z", set_((slice(None), 3, 2), 0.0)),
        (Neuron(0, 5, pos=(1, 2)), scale(2.5), "blocks.0.mlp.hook_post",
         set_((slice(None), [1, 2], 5), lambda a: 2.5 * a[:, [1, 2], 5])),
        (ResidMid(1, pos=-1), add(vec, 3.0), "blocks.1.hook_resid_mid",
         set_((slice(None), -1), lambda a: a[:, -1] + 3.0 * vec)),
        (Embed(pos=(1, 2)), add_noise(noise), "hook_embed",
         set_((slice(None), [1, 2]), lambda a: a[:, [1, 2]] + noise)),
        (MLP(1, pos=2), mean_of(other), "blocks.1.hook_mlp_out",
         set_((slice(None), 2), ref["mlp_out", 1][:, 2].mean(0))),
        (MLP(2), mean_of(other, per_position=False), "blocks.2.hook_mlp_out",
         set_((slice(None),), ref["mlp_out", 2].mean((0, 1)))),
        (Head(0, 1, part="v"), resample_from(other[:1]), "blocks.0.attn.hook_v",
         set_((slice(None), slice(None), 1), ref["v", 0][:1, :, 1])),
        (ResidPre(2, pos=(0, 4)), patch_from(other), "blocks.2.hook_resid_pre",
         set_((slice(None), [0, 4]), ref["resid_pre", 2][:, [0, 4]])),
        (Edge(1, 5, (1, 2)), knock_out(), "blocks.1.attn.hook_attn_scores",
         set_((slice(None), slice(None), 5, [1, 2]), float("-inf"))),
    ]  # fmt: skip
    with torch.no_grad():
        plain = model(tokens)
    for site, edit, name, fn in cases:
        expected = hand(model, tokens, name, fn)
        assert (expected - plain).abs().max() > 1e-3, site  # the edit does something, so a no-op would fail
        torch.testing.assert_close(with_edit(model, tokens, site, edit), expected, atol=1e-5, rtol=0)
    assert model.hook_count() == 0


def test_seeded_gaussian_noise():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=2, n_pos=5)
    gen = torch.Generator().manual_seed(7)
    draw = torch.randn(2, 2, model.cfg.d_model, generator=gen) * 0.5

    def fn(a):
        a[:, [0, 3]] += draw

    expected = hand(model, tokens, "hook_embed", fn)
    got = with_edit(model, tokens, Embed(pos=(0, 3)), add_noise(std=0.5, seed=7))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_patch_between_prompts_of_different_lengths():
    """pos_map {source position: base position}: a 4-token source patched into a 6-token base."""
    model = gpt2_like()
    base, _ = token_pair(model, batch=1, n_pos=6, seed=4)
    source, _ = token_pair(model, batch=1, n_pos=4, seed=5)
    _, ref = model.run_with_cache(source)
    pos_map = {1: 3, 3: 5}  # source 1 -> base 3, source 3 -> base 5

    def fn(a):
        a[:, [3, 5]] = ref["resid_mid", 1][:, [1, 3]]

    expected = hand(model, base, "blocks.1.hook_resid_mid", fn)
    got = with_edit(model, base, ResidMid(1), patch_from(source, pos_map))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="pos_map points outside the 4-token source"):
        with_edit(model, base, ResidMid(1), patch_from(source, {7: 2}))


def run_adapter(site, edit_fn, act, offset):
    """The engine's one adapter, called as a forward over a KV cache would call it (positions offset..)."""
    ((name, hook),) = edit_hooks({site.hook_name: [(slice(None), site, edit_fn)]})
    seq = SequenceInfo(torch.arange(offset, offset + act.shape[1])[None], None, offset=offset)
    with running(seq):
        return hook(act, type("H", (), {"name": name})())


def test_edits_address_absolute_positions():
    """With 3 positions already cached, tensor index i is position 3 + i; earlier positions are untouched."""
    site = ResidPre(0, pos=4)
    act = torch.ones(2, 2, 5)  # positions 3 and 4
    fn = zero().bind(site, None).fn
    out = run_adapter(site, fn, act, offset=3)
    assert out[:, 1].abs().sum() == 0 and (out[:, 0] == 1).all()
    assert (run_adapter(ResidPre(0, pos=1), zero().bind(ResidPre(0, pos=1), None).fn, act, 3) == 1).all()
    last = ResidPre(0, pos=-1)  # the last position of the whole 5-token sequence: tensor index 1
    assert run_adapter(last, zero().bind(last, None).fn, act, 3)[:, 1].abs().sum() == 0
    # A patch reads the source at the same absolute positions.
    src = torch.arange(2 * 5 * 5, dtype=torch.float).view(2, 5, 5)
    run = type("R", (), {"acts": {site.hook_name: src}, "mask": None})()
    every = ResidPre(0)
    out = run_adapter(every, patch_from(None).bind(every, run).fn, act.clone(), offset=3)
    torch.testing.assert_close(out, src[:, 3:5])
    at = At(every, offset=3, n_pos=2)
    assert at.positions.tolist() == [3, 4] and at.n_seq == 5
    with pytest.raises(ValueError, match="position 7 out of range for a 5-token input"):
        _ = At(ResidPre(0, pos=7), offset=3, n_pos=2).index
    assert At(ResidPre(0, pos=7), offset=3, n_pos=2, strict=False).index == (slice(None), [])


def test_pattern_edits_cut_keys_to_the_sequence():
    site = Head(0, 1, pos=None, part="pattern")
    ref = torch.rand(3, 4, 6, 6)
    at = At(site, offset=2, n_pos=2)  # queries 2, 3; keys 0..3
    assert torch.equal(at.align(ref), ref[:, :, 2:4, :4])
