"""Site specs: hook names, selectors, validation messages, sweeps."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_helpers import gpt2_like, llama_like

from interp.analysis import MLP, Attn, Head, Neuron, Resid, ResidPre


def test_hook_names_and_selectors_exist_in_the_model():
    model = llama_like()
    sites = [Resid(0), Resid(1, 2, "mid"), Resid(2, stage="post"), Attn(1), MLP(2, -1), Neuron(1, 5),
             Head(0, 3), Head(1, 1, part="k"), Head(2, 0, pos=(1, 2), part="pattern")]  # fmt: skip
    for site in sites:
        site.validate(model, n_pos=4)
        assert site.hook_name in model.hook_dict
    assert Head(1, 2, pos=3).selector == (slice(None), 3, 2)
    assert Head(1, 2, pos=3, part="pattern").selector == (slice(None), 2, 3)
    assert Neuron(0, 7).selector == (slice(None), slice(None), 7)


def test_specs_are_frozen_hashable_and_normalised():
    head = Head(np.int64(1), 2, pos=[1, 2])
    assert head == Head(1, 2, pos=(1, 2)) and hash(head) == hash(Head(1, 2, pos=(1, 2)))
    assert type(head.layer) is int
    with pytest.raises(AttributeError):
        head.layer = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="must be an integer"):
        Neuron(0, 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="part must be"):
        Head(0, 0, part="o")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stage must be"):
        Resid(0, stage="middle")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("site", "message"),
    [
        (Head(3, 0), r"Head\(layer=3.*layer 3 out of range; the model has 3 layers \(0..2\)"),
        (Head(-1, 0), "layer -1 out of range"),
        (Head(0, 4), "head 4 out of range; layer 0 has 4 heads"),
        (Neuron(1, 48), "neuron index 48 out of range; d_mlp is 48"),
        (Resid(0, pos=6), "position 6 out of range for a 6-token input"),
        (MLP(0, pos=(0, -7)), "position -7 out of range"),
    ],
)
def test_invalid_sites_have_clear_messages(site, message):
    with pytest.raises(ValueError, match=message):
        site.validate(gpt2_like(), n_pos=6)


def test_kv_heads_are_checked_against_the_kv_head_count():
    model = llama_like()  # 4 query heads, 2 key/value heads
    Head(0, 3, part="q").validate(model)
    with pytest.raises(ValueError, match="head 2 out of range; layer 0 has 2 key/value heads"):
        Head(0, 2, part="v").validate(model)


def test_every_enumerates_in_transformer_lens_order():
    model = gpt2_like()
    assert Resid.every(model, 2)[:3] == [Resid(0, 0), Resid(0, 1), Resid(1, 0)]
    assert len(Head.every(model)) == 12 and Head.every(model)[4] == Head(1, 0)
    assert Head.every(model, 2)[:2] == [Head(0, 0, 0), Head(0, 1, 0)]  # layer, pos, head
    assert len(Head.every(llama_like(), part="k")) == 6
    assert len(Neuron.every(model, layers=[1])) == model.cfg.d_mlp
    assert ResidPre(2, 1).to_row() == {"site": "resid_pre", "layer": 2, "pos": 1}
    assert Neuron(2, 5).to_row() == {"site": "neuron", "layer": 2, "neuron": 5}
