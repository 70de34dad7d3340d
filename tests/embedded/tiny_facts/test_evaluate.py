"""tiny_facts.evaluate's ablations mean what they say: checked against copies of the model edited by hand.

Mean-ablating a layer's output at every position is the same as giving that layer zero weights and the
mean as its bias (attn: W_O = 0, b_O = mean; MLP: W_out = 0, b_out = mean), so the hooked model and the
edited copy must agree on every logit, and the ablation table's accuracy must be the copy's accuracy.
"""

from __future__ import annotations

import copy

import pytest
import torch

import interp
from interp.analysis import MLP, Attn
from interp.embedded.tiny_facts.corpus import eval_sets
from interp.embedded.tiny_facts.evaluate import ablation_hooks, ablation_table, accuracy


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load("tiny-facts").requires_grad_(False)


@pytest.fixture(scope="module")
def examples() -> list:
    return eval_sets(seed=0)["trained"][:40]


def _real_mean(model: interp.HookedTransformer, name: str, prompts: list[str]) -> torch.Tensor:
    """The activation's mean over every real token of the prompts, one prompt at a time (no padding at all)."""
    rows = [model.run_with_cache(p, names_filter=[name])[1][name][0] for p in prompts]
    return torch.cat(rows).mean(0)


def _edited(
    model: interp.HookedTransformer, site: Attn | MLP, mean: torch.Tensor
) -> interp.HookedTransformer:
    edited = copy.deepcopy(model)
    block = edited.blocks[site.layer]
    w, b = (block.attn.W_O, block.attn.b_O) if isinstance(site, Attn) else (block.mlp.W_out, block.mlp.b_out)
    w.data.zero_()
    b.data.copy_(mean)
    return edited


@pytest.mark.parametrize("site", [Attn(1), MLP(2)], ids=str)
def test_mean_ablation_is_a_bias_equal_to_the_mean(model, examples, site):
    prompts = [e.prompt for e in examples]
    mean = _real_mean(model, site.hook_name, prompts)
    edited = _edited(model, site, mean)
    tokens, mask = model.to_tokens(prompts, padding_side="right", return_attention_mask=True)
    with torch.no_grad(), model.hooks(ablation_hooks(model, site, "mean", examples, batch_size=16)):
        hooked = model(tokens, attention_mask=mask)
    expected = edited(tokens, attention_mask=mask)
    real = mask.bool()
    torch.testing.assert_close(hooked[real], expected[real], atol=1e-4, rtol=1e-4)


def test_ablation_table_mean_column_is_the_edited_models_accuracy(model, examples):
    rows = {(r["layer"], r["component"]): r for r in ablation_table(model, examples)}
    prompts = [e.prompt for e in examples]
    for site, component in ((Attn(0), "attn"), (MLP(1), "mlp"), (MLP(3), "mlp")):
        edited = _edited(model, site, _real_mean(model, site.hook_name, prompts))
        assert rows[site.layer, component]["mean"] == pytest.approx(accuracy(edited, examples))
    # Zero and mean ablation are different edits: somewhere in the table they score differently.
    assert any(r["zero"] != r["mean"] for r in rows.values())


def test_unknown_method_is_a_clear_error(model, examples):
    with pytest.raises(ValueError, match="'zero' or 'mean'"):
        ablation_hooks(model, MLP(0), "resample", examples)
