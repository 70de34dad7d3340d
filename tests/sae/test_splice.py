"""Splicing dictionaries into a model: exact with the error term, equal to a hand-written hook without it."""

from __future__ import annotations

import pytest
import torch
from conftest import make_hf

import interp
from interp.sae import SAE, SAEConfig


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load(make_hf("gpt2"))  # d_model 32, 4 heads of 8


def make(arch: str, hook: str, d_in: int = 32, out: str | None = None, seed: int = 0, **kw) -> SAE:
    extra = {"k": 6} if arch == "topk" else {}
    sae = SAE(SAEConfig(arch, d_in=d_in, d_sae=40, hook_name=hook, hook_name_out=out, **(extra | kw)))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    return sae


@pytest.fixture
def tokens() -> torch.Tensor:
    return torch.randint(0, 96, (2, 9), generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("arch", ["standard", "topk", "gated", "jumprelu"])
def test_sae_splice_equals_hand_hook_and_error_term_is_exact(model, tokens, arch: str) -> None:
    sae = make(arch, "blocks.1.hook_resid_post")
    with torch.no_grad():
        clean = model(tokens)
        want = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_post", lambda a, h: sae(a))])
        with model.saes([sae]):
            spliced = model(tokens)
        exact = model.run_with_saes(tokens, saes=[sae], use_error_term=True)
    assert torch.allclose(spliced, want, atol=1e-6)
    assert not torch.allclose(spliced, clean, atol=1e-3)  # the reconstruction really replaced the residual
    assert torch.allclose(exact, clean, atol=1e-5)
    assert model.hook_count() == 0 and "blocks.1.hook_resid_post.hook_sae_acts_post" not in model.hook_names()


def test_cache_holds_the_sae_points(model, tokens) -> None:
    sae = make("topk", "blocks.0.hook_resid_post")
    _, plain = model.run_with_cache(tokens)
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True)
    name = "blocks.0.hook_resid_post"
    for point in ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error", "hook_sae_output"):  # fmt: skip
        assert f"{name}.{point}" in cache, point
    with torch.no_grad():
        acts = sae.encode(plain[name])
    assert torch.allclose(cache[f"{name}.hook_sae_acts_post"], acts, atol=1e-6)
    assert int((cache[f"{name}.hook_sae_acts_post"] > 0).sum(-1).max()) <= 6
    recons, error = cache[f"{name}.hook_sae_recons"], cache[f"{name}.hook_sae_error"]
    assert torch.allclose(recons + error, plain[name], atol=1e-5)  # error = x - reconstruction
    assert torch.allclose(cache["blocks.1.hook_resid_pre"], plain["blocks.1.hook_resid_pre"], atol=1e-5)


def test_editing_a_latent_moves_the_output_by_its_decoder_row(model, tokens) -> None:
    sae = make("standard", "blocks.1.hook_resid_mid")
    _, cache = model.run_with_cache_with_saes(tokens, saes=[sae], use_error_term=True)
    acts = cache["blocks.1.hook_resid_mid.hook_sae_acts_post"]
    i = int(acts[0, -1].argmax())

    def ablate(a, hook):
        a[..., i] = 0
        return a

    with (
        model.saes([sae], use_error_term=True),
        model.hooks([("blocks.1.hook_resid_mid.hook_sae_acts_post", ablate)]),
    ):
        _, edited = model.run_with_cache(tokens, names_filter="blocks.1.hook_resid_mid.hook_sae_output")
    delta = (
        edited["blocks.1.hook_resid_mid.hook_sae_output"] - cache["blocks.1.hook_resid_mid.hook_sae_input"]
    )
    want = -acts[..., i, None] * sae.W_dec[i].detach()
    assert torch.allclose(delta, want, atol=1e-5)


def test_transcoder_writes_the_mlp_out(model, tokens) -> None:
    tc = make("skip_transcoder", "blocks.1.ln2.hook_normalized", out="blocks.1.hook_mlp_out", seed=2)
    with torch.no_grad():
        clean, cache = model.run_with_cache(tokens)
        store = {}

        def read(a, h):
            store["x"] = a

        want = model.run_with_hooks(
            tokens,
            fwd_hooks=[
                ("blocks.1.ln2.hook_normalized", read),
                ("blocks.1.hook_mlp_out", lambda a, h: tc(store["x"])),
            ],
        )
        with model.saes(tc):
            spliced = model(tokens)
        exact = model.run_with_saes(tokens, saes=tc, use_error_term=True)
        _, tcache = model.run_with_cache_with_saes(tokens, saes=tc, use_error_term=True)
    assert torch.allclose(spliced, want, atol=1e-6) and not torch.allclose(spliced, clean, atol=1e-3)
    assert torch.allclose(exact, clean, atol=1e-5)
    recons = tcache["blocks.1.hook_mlp_out.hook_sae_output"] - tcache["blocks.1.hook_mlp_out.hook_sae_error"]
    # SAELens names a transcoder's points under the hook it writes
    assert "blocks.1.hook_mlp_out.hook_sae_acts_post" in tcache and not any(
        k.startswith("blocks.1.ln2.hook_normalized.hook_sae") for k in tcache
    )
    assert torch.allclose(recons, tc(cache["blocks.1.ln2.hook_normalized"]).detach(), atol=1e-5)


def test_hook_z_sae_reads_flattened_heads(model, tokens) -> None:
    sae = make("standard", "blocks.0.attn.hook_z", d_in=32)
    assert sae.cfg.reshape_activations == "none"
    sae = SAE(sae.cfg.replace(reshape_activations="hook_z"))
    with torch.no_grad():
        for p in sae.parameters():
            p.normal_(0, 0.2)
        _, plain = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_z")
        _, cache = model.run_with_cache_with_saes(
            tokens, saes=[sae], names_filter=lambda n: n.startswith("blocks.0.attn.hook_z")
        )
    z = plain["blocks.0.attn.hook_z"]  # [batch, pos, head, d_head]
    assert torch.allclose(
        cache["blocks.0.attn.hook_z.hook_sae_acts_post"], sae.encode(z.flatten(-2)).detach(), atol=1e-6
    )


def test_bad_splices_are_clear_and_leave_no_hook(model, tokens) -> None:
    with pytest.raises(KeyError, match="no hook for"):
        with model.saes([make("standard", "blocks.9.hook_resid_post")]):
            pass
    with pytest.raises(ValueError, match="d_in=16 cannot read blocks.0.hook_resid_post, whose width is 32"):
        model.run_with_saes(tokens, saes=[make("standard", "blocks.0.hook_resid_post", d_in=16)])
    processed = make("standard", "blocks.0.hook_resid_post")
    processed = SAE(processed.cfg.replace(model_from_pretrained_kwargs={"center_writing_weights": True}))
    with pytest.raises(ValueError, match="center_writing_weights=True"):
        model.run_with_saes(tokens, saes=[processed])
    assert model.hook_count() == 0


def test_splice_is_local_to_its_thread(model, tokens) -> None:
    """Thread A keeps a dictionary spliced while thread B runs: B sees neither it nor its hook names."""
    import threading

    sae = make("topk", "blocks.1.hook_resid_post")
    with torch.no_grad():
        clean = model(tokens)
        with model.saes([sae]):
            spliced = model(tokens)
    entered, done = threading.Event(), threading.Event()
    wrong: list[str] = []

    def a() -> None:
        with torch.no_grad(), model.saes([sae]):
            entered.set()
            for _ in range(50):
                if not torch.allclose(model(tokens), spliced, atol=1e-6):
                    wrong.append("A lost its splice")
            done.wait(30)

    def b() -> None:
        entered.wait(30)
        for _ in range(50):
            with torch.no_grad():
                if not torch.allclose(model(tokens), clean, atol=1e-6):
                    wrong.append("B saw A's splice")
            if "blocks.1.hook_resid_post.hook_sae_acts_post" in model.hook_names():
                wrong.append("B saw A's hook names")
        done.set()

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong, wrong[:3]
