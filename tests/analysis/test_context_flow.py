"""Context flow: per (destination, source, head) contributions sum to attn_out; importance rules."""

from __future__ import annotations

import pytest
import torch
from analysis_helpers import gpt2_like, llama_like, token_pair

from interp.analysis import context_flow, flow_graph, flow_summary, importance


@pytest.mark.parametrize("make", [gpt2_like, llama_like], ids=["gpt2", "llama-gqa"])
def test_contributions_sum_to_attn_out(make):
    model = make()
    tokens, _ = token_pair(model, batch=2, n_pos=6)
    _, cache = model.run_with_cache(tokens)
    for layer in range(model.cfg.n_layers):
        flow = context_flow(model, tokens, layer, example=1)
        total = flow.contributions.sum((1, 2)) + flow.b_O
        torch.testing.assert_close(total, cache["attn_out", layer][1], atol=1e-5, rtol=0)
        torch.testing.assert_close(flow.attn_out, cache["attn_out", layer][1])
        # each head's contributions summed over sources are that head's output, z @ W_O
        per_head = torch.einsum("phd,hdm->phm", cache["z", layer][1], model.blocks[layer].attn.W_O)
        torch.testing.assert_close(flow.contributions.sum(1), per_head, atol=1e-5, rtol=0)
        assert flow.contributions[2, 3:].abs().max() == 0  # causal: no flow from later sources
    some = context_flow(model, tokens, 1, destinations=[-1, 2], example=1)
    full = context_flow(model, tokens, 1, example=1)
    assert some.destinations == [5, 2]
    torch.testing.assert_close(some.contributions, full.contributions[[5, 2]])


def test_importance_rule():
    whole = torch.tensor([1.0, 1.0])
    parts = torch.tensor([[1.0, 1.0], [1.0, 0.0], [-1.0, -1.0]])
    # proximities max(0, |whole|_1 - |whole - part|_1): 2, 1, 0 -> renormalised
    assert importance(parts, whole).tolist() == pytest.approx([2 / 3, 1 / 3, 0.0])


def test_summary_and_graph():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=1, n_pos=6)
    summary = flow_summary(model, tokens, layers=[0, 2], destinations=[0, 5], k=2)
    assert summary[["layer", "dest"]].values.tolist() == [[0, 0], [0, 5], [2, 0], [2, 5]]
    _, cache = model.run_with_cache(tokens)
    row = summary.iloc[1]
    ratio = cache["attn_out", 0][0, 5].norm() / cache["resid_pre", 0][0, 5].norm()
    assert row.delta_ratio == pytest.approx(ratio.item(), rel=1e-5)
    assert 0 <= row.other_share <= 1 and len(row.top_sources) == 2 and len(row.top_heads) == 2
    assert summary.iloc[0].other_share == pytest.approx(0.0, abs=1e-6)  # position 0 can only see itself
    graph = flow_graph(model, tokens, layers=[1], destinations=[5], threshold=0.0)
    assert len(graph) == 1 + 6 * model.cfg.n_heads + 1
    assert graph["importance"].sum() == pytest.approx(1.0, abs=1e-5)
    assert set(graph["kind"]) == {"residual", "head", "bias"}
    assert len(flow_graph(model, tokens, layers=[1], destinations=[5], threshold=0.05)) < len(graph)


def test_errors():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=1, n_pos=6)
    with pytest.raises(ValueError, match="layers \\[3\\] out of range"):
        context_flow(model, tokens, 3)
    with pytest.raises(ValueError, match="destinations \\[6\\] out of range"):
        context_flow(model, tokens, 0, destinations=[6])
    with pytest.raises(ValueError, match="example 1 out of range"):
        context_flow(model, tokens, 0, example=1)
