"""TL's demo notebooks and ARENA's exercises, cell by cell: the model/cache/hook/weight calls run unchanged on an
interp model (only `HookedTransformer.from_pretrained(...)` is swapped for `interp.load(...)`), and give the
numbers TransformerLens gives on the same weights (TL 3's HookedTransformer or TL 4's bridge, per environment).

Main_Demo.ipynb, Exploratory_Analysis_Demo.ipynb, Activation_Patching_in_TL_Demo.ipynb, ARENA 1.2 (induction
heads) and 1.3 (IOI).
"""

from __future__ import annotations

from functools import partial

import torch
from compat_helpers import get_act_name, hf_gpt2, tl_reference, word_tokenizer
from transformer_lens import patching
from transformer_lens.FactoredMatrix import FactoredMatrix

import interp

ATOL = dict(atol=3e-5, rtol=0)


def _pair():
    hf = hf_gpt2()
    return interp.load(hf, tokenizer=word_tokenizer()), tl_reference(hf)


# ---- Main_Demo.ipynb --------------------------------------------------------------------------------------------
def test_main_demo_caching_and_attention_patterns():
    model, ref = _pair()
    gpt2_text = "When John and Mary went to the store, John gave a bag to Mary. The cat sat on the mat."
    gpt2_tokens = model.to_tokens(gpt2_text)
    gpt2_logits, gpt2_cache = model.run_with_cache(gpt2_tokens, remove_batch_dim=True)
    attention_pattern = gpt2_cache["pattern", 0, "attn"]
    assert attention_pattern.shape == (model.cfg.n_heads, gpt2_tokens.shape[1], gpt2_tokens.shape[1])
    _, ref_cache = ref.run_with_cache(gpt2_tokens, remove_batch_dim=True)
    torch.testing.assert_close(attention_pattern, ref_cache["pattern", 0, "attn"], **ATOL)
    gpt2_str_tokens = model.to_str_tokens(gpt2_text)
    assert len(gpt2_str_tokens) == attention_pattern.shape[-1]
    # "attn_hook_name = utils.get_act_name("pattern", 0)" with a names_filter
    attn_hook_name = get_act_name("pattern", 0)
    _, gpt2_attn_cache = model.run_with_cache(
        gpt2_tokens, remove_batch_dim=True, names_filter=[attn_hook_name]
    )
    torch.testing.assert_close(gpt2_attn_cache[attn_hook_name], attention_pattern)


def test_main_demo_head_ablation_loss():
    model, ref = _pair()
    gpt2_tokens = model.to_tokens("When John and Mary went to the store, John gave a bag to Mary")
    layer_to_ablate, head_index_to_ablate = 0, 3

    def head_ablation_hook(value, hook):
        value[:, :, head_index_to_ablate, :] = 0.0
        return value

    original_loss = model(gpt2_tokens, return_type="loss")
    ablated_loss = model.run_with_hooks(
        gpt2_tokens, return_type="loss", fwd_hooks=[(get_act_name("v", layer_to_ablate), head_ablation_hook)]
    )
    ref_ablated = ref.run_with_hooks(
        gpt2_tokens, return_type="loss", fwd_hooks=[(get_act_name("v", layer_to_ablate), head_ablation_hook)]
    )
    torch.testing.assert_close(original_loss, ref(gpt2_tokens, return_type="loss"), **ATOL)
    torch.testing.assert_close(ablated_loss, ref_ablated, **ATOL)
    assert abs(ablated_loss.item() - original_loss.item()) > 1e-4


def test_main_demo_ioi_residual_patching_loop():
    model, ref = _pair()
    clean_tokens = model.to_tokens("After John and Mary went to the store, Mary gave a bottle of milk to")
    corrupted_tokens = model.to_tokens("After John and Mary went to the store, John gave a bottle of milk to")
    correct_index, incorrect_index = model.to_single_token(" John"), model.to_single_token(" Mary")

    def logits_to_logit_diff(logits):
        return logits[0, -1, correct_index] - logits[0, -1, incorrect_index]

    def run(m):
        clean_logits, clean_cache = m.run_with_cache(clean_tokens)
        clean_logit_diff = logits_to_logit_diff(clean_logits)
        corrupted_logit_diff = logits_to_logit_diff(m(corrupted_tokens))

        def residual_stream_patching_hook(resid_pre, hook, position):
            clean_resid_pre = clean_cache[hook.name]
            resid_pre[:, position, :] = clean_resid_pre[:, position, :]
            return resid_pre

        num_positions = len(clean_tokens[0])
        result = torch.zeros((model.cfg.n_layers, num_positions), device=model.cfg.device)
        for layer in range(model.cfg.n_layers):
            for position in range(num_positions):
                temp_hook_fn = partial(residual_stream_patching_hook, position=position)
                patched_logits = m.run_with_hooks(
                    corrupted_tokens, fwd_hooks=[(get_act_name("resid_pre", layer), temp_hook_fn)]
                )
                patched_logit_diff = logits_to_logit_diff(patched_logits).detach()
                result[layer, position] = (patched_logit_diff - corrupted_logit_diff) / (
                    clean_logit_diff - corrupted_logit_diff
                )
        return result

    ours = run(model)
    torch.testing.assert_close(ours, run(ref), atol=1e-4, rtol=0)
    torch.testing.assert_close(ours[0, 10], torch.tensor(1.0), atol=1e-5, rtol=0)  # the differing token
    token_labels = [f"{token}_{index}" for index, token in enumerate(model.to_str_tokens(clean_tokens))]
    assert token_labels[2] == " John_2"


def test_main_demo_induction_loss_and_scores():
    model, ref = _pair()
    seq_len, batch = 8, 3
    random_tokens = torch.randint(
        3, model.cfg.d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0)
    )
    bos = torch.zeros((batch, 1), dtype=torch.long)
    repeated_tokens = torch.cat([bos, random_tokens, random_tokens], dim=1).to(model.cfg.device)
    repeated_logits = model(repeated_tokens)
    correct_log_probs = model.loss_fn(repeated_logits, repeated_tokens, per_token=True)
    assert correct_log_probs.shape == (batch, 2 * seq_len)
    torch.testing.assert_close(
        correct_log_probs, ref.loss_fn(ref(repeated_tokens), repeated_tokens, per_token=True), **ATOL
    )

    def scores(m):
        induction_score_store = torch.zeros((model.cfg.n_layers, model.cfg.n_heads), device=model.cfg.device)

        def induction_score_hook(pattern, hook):
            induction_stripe = pattern.diagonal(dim1=-2, dim2=-1, offset=1 - seq_len)
            induction_score = induction_stripe[:, :, -seq_len:].mean((0, -1))  # TL's einops.reduce
            induction_score_store[
                hook.layer() if callable(getattr(hook, "layer", None)) else int(hook.name.split(".")[1]), :
            ] = induction_score

        m.run_with_hooks(repeated_tokens, return_type=None,
                         fwd_hooks=[(lambda name: name.endswith("pattern"), induction_score_hook)])  # fmt: skip
        return induction_score_store

    torch.testing.assert_close(scores(model), scores(ref), **ATOL)


def test_main_demo_factored_matrix_and_ov_copying():
    model, _ = _pair()
    A, B = torch.randn(5, 2), torch.randn(2, 5)
    AB_factor = FactoredMatrix(A, B)
    torch.testing.assert_close(AB_factor.AB, A @ B)
    OV_circuit_all_heads = model.OV
    assert OV_circuit_all_heads.shape == (
        model.cfg.n_layers,
        model.cfg.n_heads,
        model.cfg.d_model,
        model.cfg.d_model,
    )
    eigenvalues = OV_circuit_all_heads.eigenvalues
    OV_copying_score = eigenvalues.sum(dim=-1).real / eigenvalues.abs().sum(dim=-1)
    assert OV_copying_score.shape == (model.cfg.n_layers, model.cfg.n_heads)
    full_OV_circuit = model.embed.W_E @ OV_circuit_all_heads @ model.unembed.W_U
    layer, head = 1, 2
    want = model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U
    torch.testing.assert_close(full_OV_circuit[layer, head].AB, want, atol=1e-4, rtol=1e-4)
    names = [name for name, _ in model.tl_named_parameters()]
    assert "blocks.0.attn.W_Q" in names and "embed.W_E" in names


def test_main_demo_tokenization_cells():
    model, _ = _pair()
    assert model.get_token_position(" cat", "The cat sat on the mat") == 2
    assert model.get_token_position(" cat", "The cat sat on the mat", prepend_bos=False) == 1
    tokens = model.to_tokens("The cat sat on the mat. The cat sat")
    assert (
        model.get_token_position(" cat", tokens, mode="last") == 9
    )  # "The" is <unk> here: [bos, The, cat, ...]
    assert model.to_str_tokens(" Claire", prepend_bos=False) == [" Claire"]
    example_multi_text_tokens = model.to_tokens(["The cat", "The cat sat on the mat"])
    assert example_multi_text_tokens.shape == (2, 7)


# ---- Exploratory_Analysis_Demo.ipynb ----------------------------------------------------------------------------
def test_exploratory_logit_difference_attribution():
    """Run on TL 3's default processing (the README's one line), where the demo's decompositions live."""
    hf = hf_gpt2()
    model = interp.load(hf, tokenizer=word_tokenizer(), fold_ln=True, center_writing_weights=True,
                        center_unembed=True, fold_value_biases=True)  # fmt: skip
    prompts = [
        "When John and Mary went to the shops, John gave a bag to",
        "When Tom and Sally went to the park, Tom gave a ball to",
    ]
    answers = [(" Mary", " John"), (" Sally", " Tom")]
    answer_tokens = torch.tensor([[model.to_single_token(a) for a in pair] for pair in answers])
    tokens = model.to_tokens(prompts)
    original_logits, cache = model.run_with_cache(tokens)
    answer_logits = original_logits[:, -1].gather(-1, answer_tokens)
    original_average_logit_diff = (answer_logits[:, 0] - answer_logits[:, 1]).mean()

    answer_residual_directions = model.tokens_to_residual_directions(answer_tokens)
    logit_diff_directions = answer_residual_directions[:, 0] - answer_residual_directions[:, 1]
    final_residual_stream = cache["resid_post", -1]
    final_token_residual_stream = final_residual_stream[:, -1, :]
    scaled_final_token_residual_stream = cache.apply_ln_to_stack(
        final_token_residual_stream, layer=-1, pos_slice=-1
    )
    bias_diff = (model.b_U[answer_tokens[:, 0]] - model.b_U[answer_tokens[:, 1]]).mean()
    average_logit_diff = (scaled_final_token_residual_stream * logit_diff_directions).sum(-1).mean()
    torch.testing.assert_close(average_logit_diff + bias_diff, original_average_logit_diff, atol=1e-4, rtol=0)

    def residual_stack_to_logit_diff(residual_stack, cache):
        scaled_residual_stack = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
        return (scaled_residual_stack * logit_diff_directions).sum(-1).mean(-1)

    accumulated_residual, labels = cache.accumulated_resid(
        layer=-1, incl_mid=True, pos_slice=-1, return_labels=True
    )
    logit_lens_logit_diffs = residual_stack_to_logit_diff(accumulated_residual, cache)
    assert labels[-1] == "final_post" and len(labels) == 2 * model.cfg.n_layers + 1
    torch.testing.assert_close(logit_lens_logit_diffs[-1], average_logit_diff, atol=1e-5, rtol=0)
    per_layer_residual, labels = cache.decompose_resid(layer=-1, pos_slice=-1, return_labels=True)
    per_layer_logit_diffs = residual_stack_to_logit_diff(per_layer_residual, cache)
    torch.testing.assert_close(per_layer_logit_diffs.sum(), average_logit_diff, atol=1e-5, rtol=0)
    per_head_residual, labels = cache.stack_head_results(layer=-1, pos_slice=-1, return_labels=True)
    per_head_logit_diffs = residual_stack_to_logit_diff(per_head_residual, cache)
    assert per_head_logit_diffs.reshape(model.cfg.n_layers, model.cfg.n_heads).shape == (3, 4)
    # Heads + biases + embeddings = everything (the full decomposition).
    full = residual_stack_to_logit_diff(
        cache.get_full_resid_decomposition(expand_neurons=False, pos_slice=-1), cache
    )
    torch.testing.assert_close(full.sum(), average_logit_diff, atol=1e-4, rtol=0)


# ---- Activation_Patching_in_TL_Demo.ipynb -----------------------------------------------------------------------
def test_activation_patching_demo_sweeps_equal_tl_on_tl():
    model, ref = _pair()
    clean_tokens = model.to_tokens("When John and Mary went to the store, John gave a bag to")
    corrupted_tokens = model.to_tokens("When John and Mary went to the store, Mary gave a bag to")
    answer = (model.to_single_token(" Mary"), model.to_single_token(" John"))

    def ioi_metric(logits):
        return logits[0, -1, answer[0]] - logits[0, -1, answer[1]]

    _, clean_cache = model.run_with_cache(clean_tokens)
    _, ref_cache = ref.run_with_cache(clean_tokens)
    for fn in (patching.get_act_patch_resid_pre, patching.get_act_patch_attn_out,
               patching.get_act_patch_attn_head_out_all_pos, patching.get_act_patch_attn_head_pattern_all_pos):  # fmt: skip
        ours = torch.as_tensor(fn(model, corrupted_tokens, clean_cache, ioi_metric))
        theirs = torch.as_tensor(fn(ref, corrupted_tokens, ref_cache, ioi_metric))
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0, msg=str(fn))


# ---- ARENA 1.2 induction heads ---------------------------------------------------------------------------------
def test_arena_induction_direct_logit_attribution():
    model, _ = _pair()
    tokens = model.to_tokens("When John and Mary went to the store, John gave a bag to Mary")
    _, cache = model.run_with_cache(tokens, remove_batch_dim=True)
    embed = cache["embed"]
    l1_results, l2_results = cache["result", 0], cache["result", 1]
    W_U_correct_tokens = model.W_U[:, tokens[0, 1:]]
    direct = (embed[:-1] * W_U_correct_tokens.T).sum(-1)
    l1 = torch.einsum("p h m, m p -> p h", l1_results[:-1], W_U_correct_tokens)
    l2 = torch.einsum("p h m, m p -> p h", l2_results[:-1], W_U_correct_tokens)
    assert torch.cat([direct[:, None], l1, l2], dim=-1).shape == (
        tokens.shape[1] - 1,
        1 + 2 * model.cfg.n_heads,
    )
    # The head results are each head's write: they sum (with b_O) to attn_out.
    torch.testing.assert_close(l1_results.sum(-2) + model.b_O[0], cache["attn_out", 0], **ATOL)
    # K-composition and friends use the stacked, per-head weights.
    W_OV = FactoredMatrix(model.W_V[0, 1], model.W_O[0, 1])
    W_QK = model.W_Q[1, 2] @ model.W_K[1, 2].T
    comp = (FactoredMatrix(W_OV.A, W_OV.B).T @ W_QK).norm() / (W_OV.norm() * W_QK.norm())
    assert 0 < comp.item() < 1.0


# ---- The same cells, run verbatim on interp and on TransformerLens: the numbers must be TL's ---------------------
TL3_DEFAULTS = dict(fold_ln=True, center_writing_weights=True, center_unembed=True, fold_value_biases=True)


def _exploratory_and_arena_dla_cells(model, tokens, answer_tokens):
    """Exploratory_Analysis_Demo's logit-difference cells, ARENA 1.3's `logit_attrs` variant and ARENA's
    logit lens (`accumulated_resid(apply_ln=True) @ W_U`), as written for TL 3's HookedTransformer."""
    _, cache = model.run_with_cache(tokens)  # tokens and answer ids as the notebook's to_tokens gives them
    answer_residual_directions = model.tokens_to_residual_directions(answer_tokens)
    logit_diff_directions = answer_residual_directions[:, 0] - answer_residual_directions[:, 1]

    def residual_stack_to_logit_diff(residual_stack, cache):
        scaled_residual_stack = cache.apply_ln_to_stack(residual_stack, layer=-1, pos_slice=-1)
        return (scaled_residual_stack * logit_diff_directions).sum(-1).mean(-1)

    out = {"unembed_bias": model.unembed.b_U[answer_tokens[:, 0]] - model.unembed.b_U[answer_tokens[:, 1]]}
    out["final"] = residual_stack_to_logit_diff(cache["resid_post", -1][None, :, -1], cache)
    accumulated_residual = cache.accumulated_resid(layer=-1, incl_mid=True, pos_slice=-1)
    out["logit_lens"] = residual_stack_to_logit_diff(accumulated_residual, cache)
    out["per_layer"] = residual_stack_to_logit_diff(cache.decompose_resid(layer=-1, pos_slice=-1), cache)
    out["per_head"] = residual_stack_to_logit_diff(cache.stack_head_results(layer=-1, pos_slice=-1), cache)
    per_layer = cache.decompose_resid(layer=-1, pos_slice=-1)
    out["logit_attrs"] = cache.logit_attrs(per_layer, answer_tokens[:, 0], answer_tokens[:, 1], pos_slice=-1)
    lens = cache.accumulated_resid(apply_ln=True, pos_slice=-1) @ model.W_U  # [layer, batch, vocab]
    out["lens_logit_diff"] = lens.gather(-1, answer_tokens[None].expand(lens.shape[0], -1, -1)).diff(dim=-1)
    return out


def test_dla_cells_give_transformer_lens_numbers_processed_and_not():
    """A TL notebook's DLA and logit-lens cells give TL's numbers, on an unprocessed model (TL 3's HookedTransformer
    or TL 4's bridge) and on one processed as TL 3's from_pretrained does (TL 3 only: TL 4 has no such model)."""
    from compat_helpers import TL3, tl3_model

    prompts = ["When John and Mary went to the shops, John gave a bag to",
               "When Tom and Sally went to the park, Tom gave a ball to"]  # fmt: skip
    answers = [(" Mary", " John"), (" Sally", " Tom")]
    cases = [({}, tl_reference(hf_gpt2()))] + (
        [(TL3_DEFAULTS, tl3_model(hf_gpt2(), **TL3_DEFAULTS))] if TL3 else []
    )
    for flags, ref in cases:
        model = interp.load(hf_gpt2(), tokenizer=word_tokenizer(), **flags)
        tokens = model.to_tokens(prompts)  # the TL 3 reference has no tokenizer (it would fetch one)
        ids = torch.tensor([[model.to_single_token(a) for a in pair] for pair in answers])
        ours = _exploratory_and_arena_dla_cells(model, tokens, ids)
        theirs = _exploratory_and_arena_dla_cells(ref, tokens, ids)
        for key, want in theirs.items():
            torch.testing.assert_close(ours[key], want.detach(), atol=5e-5, rtol=0, msg=f"{key} {flags}")
        # And they mean what the notebooks say: the final row is the model's logit difference (minus b_U and,
        # unfolded, the part ln_final's weight and bias carry, which TL's directions leave out).
        if flags:
            logits = model(tokens)[:, -1]
            diff = (logits.gather(-1, ids)[:, 0] - logits.gather(-1, ids)[:, 1]).mean()
            torch.testing.assert_close(
                ours["final"][0] + ours["unembed_bias"].mean(), diff, atol=1e-4, rtol=0
            )


def test_activation_patching_demo_every_and_by_pos_sweeps_equal_tl():
    """The demo's remaining sweeps (block_every, attn_head_*_every, attn_head_out_by_pos), interp vs TL."""
    model, ref = _pair()
    clean = model.to_tokens("When John and Mary went to the store, John gave")
    corrupted = model.to_tokens("When John and Mary went to the store, Mary gave")
    mary, john = model.to_single_token(" Mary"), model.to_single_token(" John")

    def metric(logits):
        return logits[0, -1, mary] - logits[0, -1, john]

    _, clean_cache = model.run_with_cache(clean)
    _, ref_cache = ref.run_with_cache(clean)
    for fn in (patching.get_act_patch_block_every, patching.get_act_patch_attn_head_all_pos_every,
               patching.get_act_patch_attn_head_out_by_pos, patching.get_act_patch_attn_head_by_pos_every):  # fmt: skip
        ours = torch.as_tensor(fn(model, corrupted, clean_cache, metric))
        theirs = torch.as_tensor(fn(ref, corrupted, ref_cache, metric))
        assert ours.abs().max() > 1e-3, fn  # the sweep moved the metric somewhere
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0, msg=str(fn))
