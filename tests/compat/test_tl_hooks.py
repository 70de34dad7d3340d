"""TL's persistent-hook API as notebooks use it (ARENA 1.3 IOI path patching, Main_Demo's hook.layer()).

NEEDS THE `hooks` BRANCH: `hook.layer()`, `hook.ctx`, `HookPoint.add_hook/remove_hooks`, `model.add_hook`,
`add_perma_hook`, `reset_hooks(including_permanent=)`, `remove_all_hook_fns` and
`run_with_hooks(reset_hooks_end=, clear_contexts=)` are implemented there; this file fails until it is merged.
"""

from __future__ import annotations

import copy

import torch
from compat_helpers import get_act_name, hf_gpt2, tl_reference, word_tokenizer

import interp

CLEAN = "When John and Mary went to the store, John gave a bag to"
CORRUPT = "When Tom and Sally went to the park, James gave a ball to"


def _pair():
    hf = hf_gpt2()
    return interp.load(hf, tokenizer=word_tokenizer()), tl_reference(hf)


def test_hook_layer_and_ctx():
    model, _ = _pair()
    seen = {}

    def hook(x, hook):
        hook.ctx["calls"] = hook.ctx.get("calls", 0) + 1
        seen[hook.layer()] = hook.ctx["calls"]

    model.run_with_hooks(model.to_tokens(CLEAN), fwd_hooks=[(lambda n: n.endswith("hook_pattern"), hook)])
    assert seen == {0: 1, 1: 1, 2: 1}


def test_add_hook_reset_hooks_and_perma_hooks():
    model, _ = _pair()
    tokens = model.to_tokens(CLEAN)
    base = model(tokens)

    def zero(x, hook):
        return torch.zeros_like(x)

    model.add_hook(get_act_name("z", 0), zero)
    assert not torch.allclose(model(tokens), base)
    model.reset_hooks()
    torch.testing.assert_close(model(tokens), base)
    model.add_perma_hook(get_act_name("z", 0), zero)
    model.reset_hooks()  # permanent hooks survive a plain reset
    assert not torch.allclose(model(tokens), base)
    model.reset_hooks(including_permanent=True)
    torch.testing.assert_close(model(tokens), base)
    model.blocks[0].attn.hook_z.add_hook(zero)
    model.blocks[0].attn.hook_z.remove_hooks()
    torch.testing.assert_close(model(tokens), base)
    logits = model.run_with_hooks(tokens, fwd_hooks=[(get_act_name("z", 0), zero)], reset_hooks_end=False)
    assert not torch.allclose(model(tokens), base)  # the hook stayed, as TL's reset_hooks_end=False
    model.remove_all_hook_fns(including_permanent=True)
    torch.testing.assert_close(model(tokens), base)
    assert logits.shape == base.shape


def test_arena_ioi_path_patching_to_head_queries_equals_tl():
    """ARENA 1.3: patch sender heads' output (from the corrupted run), freeze everything else, and
    measure the effect through the receivers' query inputs only."""

    def path_patch(model):
        model = copy.deepcopy(model)
        clean, corrupt = model.to_tokens(CLEAN), model.to_tokens(CORRUPT)
        model.set_use_split_qkv_input(True)
        _, clean_cache = model.run_with_cache(clean)
        _, corrupt_cache = model.run_with_cache(corrupt)
        sender, receiver_layer, receiver_heads = (0, 1), 2, [0, 3]

        def patch_or_freeze(z, hook):
            z[...] = clean_cache[hook.name][...]
            if hook.layer() == sender[0]:
                z[:, :, sender[1]] = corrupt_cache[hook.name][:, :, sender[1]]

        model.reset_hooks()
        model.add_hook(lambda n: n.endswith("hook_z"), patch_or_freeze)
        _, patched_cache = model.run_with_cache(clean, names_filter=lambda n: n.endswith("hook_resid_pre"))
        model.reset_hooks()

        def patch_q_input(q_input, hook):
            q_input[:, :, receiver_heads] = patched_cache[f"blocks.{hook.layer()}.hook_resid_pre"][:, :, None]

        logits = model.run_with_hooks(
            clean, fwd_hooks=[(get_act_name("q_input", receiver_layer), patch_q_input)]
        )
        return logits[0, -1]

    model, ref = _pair()
    torch.testing.assert_close(path_patch(model), path_patch(ref), atol=1e-4, rtol=0)
