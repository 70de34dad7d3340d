"""interp.sae against sae_lens on the same files: encode / decode / forward within 1e-5, and spliced logits of
interp's model against TL 3's HookedSAETransformer built by hand on the same (converted) GPT-2 weights.

Runs only in the second environment (bin/setup-saelens: sae-lens 6.54 + TransformerLens 3.9); the main
environment skips the whole module.
"""

from __future__ import annotations

import pytest
import torch

sae_lens = pytest.importorskip("sae_lens")

from compat_helpers import TL3, hf_gpt2, tl3_config, word_tokenizer  # noqa: E402

import interp  # noqa: E402
import interp.sae  # noqa: E402
from interp.sae import SAE, SAEConfig  # noqa: E402

ATOL = 1e-5
D = 32  # hf_gpt2's d_model
RESID = "blocks.1.hook_resid_post"
MLP_IN, MLP_OUT = "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"

# one SAE per architecture (and hook_z, the run-time normalisations, apply_b_dec_to_input=False)
CASES = {
    "standard": SAEConfig("standard", d_in=D, d_sae=48, hook_name=RESID),
    "standard-no-b_dec-in": SAEConfig("standard", d_in=D, d_sae=48, hook_name=RESID, apply_b_dec_to_input=False),
    "standard-constant-norm": SAEConfig("standard", d_in=D, d_sae=48, hook_name=RESID, normalize_activations="constant_norm_rescale"),
    "standard-layer-norm": SAEConfig("standard", d_in=D, d_sae=48, hook_name=RESID, normalize_activations="layer_norm"),
    "topk": SAEConfig("topk", d_in=D, d_sae=48, hook_name=RESID, k=5),
    "topk-rescaled": SAEConfig("topk", d_in=D, d_sae=48, hook_name=RESID, k=5, rescale_acts_by_decoder_norm=True),
    "jumprelu": SAEConfig("jumprelu", d_in=D, d_sae=48, hook_name=RESID),
    "gated": SAEConfig("gated", d_in=D, d_sae=48, hook_name=RESID),
    "hook_z": SAEConfig("standard", d_in=D, d_sae=40, hook_name="blocks.0.attn.hook_z", reshape_activations="hook_z"),
    "transcoder": SAEConfig("transcoder", d_in=D, d_sae=64, hook_name=MLP_IN, hook_name_out=MLP_OUT, apply_b_dec_to_input=False),
    "skip_transcoder": SAEConfig("skip_transcoder", d_in=D, d_sae=64, hook_name=MLP_IN, hook_name_out=MLP_OUT, apply_b_dec_to_input=False),
    "jumprelu_transcoder": SAEConfig("jumprelu_transcoder", d_in=D, d_sae=64, hook_name=MLP_IN, hook_name_out=MLP_OUT, apply_b_dec_to_input=False),
}  # fmt: skip


def random_sae(cfg: SAEConfig, seed: int = 0) -> SAE:
    """Every tensor non-trivial (biases, gates, thresholds, skip), scaled so a good share of latents fire."""
    sae = SAE(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (0.3 if name.startswith("W") else 0.1))
        if hasattr(sae, "threshold"):
            sae.threshold.copy_(torch.rand(sae.threshold.shape, generator=gen) * 0.3)
    return sae


@pytest.fixture(scope="module")
def hf():
    return hf_gpt2()


@pytest.fixture(scope="module")
def ours(hf):
    return interp.load(hf, tokenizer=word_tokenizer())


@pytest.fixture(scope="module")
def theirs(hf):
    """TL 3's HookedSAETransformer(cfg), built by hand with TL's own GPT-2 weight conversion (no hub)."""
    assert TL3, "the second environment runs TransformerLens 3"
    from sae_lens import HookedSAETransformer
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    cfg = tl3_config(hf)
    model = HookedSAETransformer(cfg)
    flags = dict(fold_ln=False, center_writing_weights=False, center_unembed=False, fold_value_biases=False)
    model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), **flags)
    return model.eval()


@pytest.fixture(scope="module")
def tokens(ours):
    return ours.to_tokens(
        ["When John and Mary went to the store, John gave a bag to", "The cat sat on the mat."]
    )


@pytest.fixture(params=sorted(CASES))
def pair(request, tmp_path):
    """The same SAE folder loaded by both libraries."""
    sae = random_sae(CASES[request.param])
    interp.sae.save(sae, tmp_path / request.param)
    mine = interp.sae.load(tmp_path / request.param)
    other = sae_lens.SAE.load_from_disk(str(tmp_path / request.param))
    return request.param, mine, other.eval()


def test_the_model_pair_agrees_before_any_splice(ours, theirs, tokens):
    torch.testing.assert_close(ours(tokens), theirs(tokens), atol=1e-4, rtol=0)


def test_sae_lens_reads_the_architecture_we_wrote(pair):
    name, mine, other = pair
    assert other.cfg.architecture() == mine.cfg.architecture
    assert other.cfg.metadata.hook_name == mine.cfg.hook_name
    assert dict(other.state_dict()).keys() == dict(mine.state_dict()).keys()


@torch.no_grad()
def test_encode_decode_forward_equal(pair, ours, tokens):
    """On the model's real activations at the SAE's hook (flattened heads for hook_z)."""
    name, mine, other = pair
    _, cache = ours.run_with_cache(tokens, names_filter=mine.cfg.hook_name)
    host = cache[mine.cfg.hook_name]  # SAELens's hook_z SAEs flatten (and unflatten) the heads themselves
    x = mine.flatten(host)
    acts, ref_acts = mine.encode(x), other.encode(host)
    assert (ref_acts > 0).float().mean() > 0.02, f"{name}: too few latents fire for the test to mean much"
    torch.testing.assert_close(acts, ref_acts, atol=ATOL, rtol=0)
    recons = mine.decode(acts)
    torch.testing.assert_close(recons, other.decode(ref_acts).reshape(recons.shape), atol=ATOL, rtol=0)
    torch.testing.assert_close(mine(x), other(host).reshape(recons.shape), atol=ATOL, rtol=0)


@torch.no_grad()
def test_spliced_logits_equal(pair, ours, theirs, tokens):
    """interp's splice against SAELens's: logits (no error term: they depend on the reconstruction) and
    the SAE's cached latents under the names SAELens gives them."""
    name, mine, other = pair
    acts = f"{mine.cfg.write_hook}.hook_sae_acts_post"  # a transcoder's latents: under its output hook
    with ours.saes([mine]):
        logits, cache = ours.run_with_cache(tokens, names_filter=acts)
    ref_logits, ref_cache = theirs.run_with_cache_with_saes(tokens, saes=[other], names_filter=acts)
    if name == "skip_transcoder":
        # SAELens 6.54's splice calls encode + decode and drops W_skip x (SkipTranscoder.forward adds it), so
        # its HookedSAETransformer disagrees with its own forward; compare with the forward spliced by hand.
        ref_logits = _spliced_by_hand(theirs, other, tokens)
        assert not torch.allclose(ref_logits, theirs.run_with_saes(tokens, saes=[other]), atol=1e-3)
    # These latents come through two models' residual streams (interp's and TL 3's, equal to float32
    # rounding), so they get a relative allowance too: activations reach ~8, where 1e-5 is about 10 ulps.
    # encode / decode on one shared input (above) stay at 1e-5 absolute.
    torch.testing.assert_close(cache[acts], ref_cache[acts].reshape(cache[acts].shape), atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=0)
    assert not torch.allclose(logits, ours(tokens), atol=1e-3), f"{name}: the splice changed nothing"


@torch.no_grad()
def test_error_term_splices_equal_and_exact(pair, ours, theirs, tokens):
    name, mine, other = pair
    clean = ours(tokens)
    err = f"{mine.cfg.write_hook}.hook_sae_error"
    with ours.saes([mine], use_error_term=True):
        logits, cache = ours.run_with_cache(tokens, names_filter=err)
    ref_logits, ref_cache = theirs.run_with_cache_with_saes(
        tokens, saes=[other], use_error_term=True, names_filter=err
    )
    torch.testing.assert_close(logits, clean, atol=1e-5, rtol=0)
    torch.testing.assert_close(logits, ref_logits, atol=1e-4, rtol=0)
    if name != "skip_transcoder":  # SAELens's error term omits the skip as its reconstruction does
        torch.testing.assert_close(cache[err], ref_cache[err].reshape(cache[err].shape), atol=1e-4, rtol=0)


def _spliced_by_hand(model, sae, tokens):
    """TL 3 forward with the output hook replaced by sae_lens's own forward of the captured input."""
    seen = {}

    def read(act, hook):
        seen["x"] = act

    def write(act, hook):
        return sae(seen["x"]).to(act.dtype)

    hooks = [(sae.cfg.metadata.hook_name, read), (sae.cfg.metadata.hook_name_out, write)]
    return model.run_with_hooks(tokens, fwd_hooks=hooks)
