"""interp.sae: each architecture's math against a hand-written reference, the formats, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import interp
from interp.errors import LoadError
from interp.sae import SAE, SAEConfig
from interp.sae.formats import config_from_saelens

D_IN, D_SAE = 32, 48


def random_sae(arch: str = "standard", seed: int = 0, **kw) -> SAE:
    extra = {"k": 5} if arch == "topk" else {}
    if arch in ("transcoder", "skip_transcoder", "jumprelu_transcoder"):
        extra |= {"hook_name_out": "blocks.1.hook_mlp_out"}
        hook = "blocks.1.ln2.hook_normalized"
    else:
        hook = "blocks.1.hook_resid_post"
    cfg = SAEConfig(arch, d_in=D_IN, d_sae=D_SAE, hook_name=hook, **(extra | kw))
    sae = SAE(cfg)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
        if hasattr(sae, "threshold"):
            sae.threshold.abs_()
    return sae


def reference(sae: SAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and reconstruction, written out from SAELens's definitions, one architecture at a time."""
    c, p = sae.cfg, dict(sae.named_parameters())
    if c.normalize_activations == "layer_norm":
        mu = x.mean(-1, keepdim=True)
        std = (x - mu).std(-1, keepdim=True)
        xin = (x - mu) / (std + 1e-5)
    elif c.normalize_activations == "constant_norm_rescale":
        coeff = D_IN**0.5 / x.norm(dim=-1, keepdim=True)
        xin = x * coeff
    else:
        xin = x
    if c.apply_b_dec_to_input and not c.is_transcoder:
        xin = xin - p["b_dec"]
    if c.architecture == "gated":
        gate = (xin @ p["W_enc"] + p["b_gate"]) > 0
        acts = gate * torch.relu(xin @ (p["W_enc"] * p["r_mag"].exp()) + p["b_mag"])
    else:
        pre = xin @ p["W_enc"] + p["b_enc"]
        if c.architecture == "topk":
            keep = pre.topk(c.k, dim=-1).indices
            acts = torch.zeros_like(pre).scatter(-1, keep, pre.gather(-1, keep).relu())
        elif c.architecture in ("jumprelu", "jumprelu_transcoder"):
            acts = torch.where(pre > p["threshold"], pre.relu(), torch.zeros_like(pre))
        else:
            acts = pre.relu()
    out = acts @ p["W_dec"] + p["b_dec"]
    if c.normalize_activations == "layer_norm":
        out = out * std + mu
    elif c.normalize_activations == "constant_norm_rescale":
        out = out / coeff
    if c.architecture == "skip_transcoder":
        out = out + x @ p["W_skip"].T
    return acts, out


ARCHS = ["standard", "topk", "jumprelu", "gated", "transcoder", "skip_transcoder", "jumprelu_transcoder"]


@pytest.mark.parametrize("arch", ARCHS)
def test_encode_decode_equal_the_reference(arch: str) -> None:
    sae = random_sae(arch)
    x = torch.randn(3, 7, D_IN, generator=torch.Generator().manual_seed(1))
    acts, out = reference(sae, x)
    with torch.no_grad():
        assert torch.allclose(sae.encode(x), acts, atol=1e-6)
        assert torch.allclose(sae(x), out, atol=1e-5)
    assert (acts > 0).any() and (acts == 0).any()  # the nonlinearity really selects


@pytest.mark.parametrize("norm", ["layer_norm", "constant_norm_rescale"])
def test_runtime_normalisation_matches_reference(norm: str) -> None:
    sae = random_sae("standard", normalize_activations=norm)
    x = 3.0 * torch.randn(4, D_IN, generator=torch.Generator().manual_seed(2)) + 1.0
    _, out = reference(sae, x)
    with torch.no_grad():
        assert torch.allclose(sae(x), out, atol=1e-5)


def test_error_term_makes_the_output_exact() -> None:
    sae = random_sae("topk")
    x = torch.randn(2, 5, D_IN)
    with torch.no_grad():
        assert not torch.allclose(sae(x), x, atol=1e-3)
        assert torch.allclose(sae(x, use_error_term=True), x, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_saelens_folder_round_trip(tmp_path: Path, arch: str) -> None:
    sae = random_sae(arch, seed=3)
    interp.sae.save(sae, tmp_path / "sae")
    raw = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert raw["architecture"] == arch and raw["metadata"]["hook_name"] == sae.cfg.hook_name
    back = interp.sae.load(tmp_path / "sae")
    assert back.cfg == sae.cfg
    for k, v in sae.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_pre_6_config_is_read() -> None:
    raw = {"d_in": 8, "d_sae": 16, "hook_point": "blocks.0.hook_resid_pre", "activation_fn_str": "topk",
           "activation_fn_kwargs": {"k": 3}, "normalize_activations": False, "apply_b_dec_to_input": False}  # fmt: skip
    cfg = config_from_saelens(raw)
    assert (cfg.architecture, cfg.k, cfg.hook_name) == ("topk", 3, "blocks.0.hook_resid_pre")
    assert cfg.normalize_activations == "none" and cfg.apply_b_dec_to_input is False


def test_gemma_scope_npz(tmp_path: Path) -> None:
    gen = np.random.default_rng(0)
    folder = tmp_path / "gemma-scope-2b-pt-res" / "layer_1" / "width_16k" / "average_l0_8"
    folder.mkdir(parents=True)
    arrays = {"W_enc": gen.normal(size=(D_IN, D_SAE)), "W_dec": gen.normal(size=(D_SAE, D_IN)),
              "b_enc": gen.normal(size=D_SAE), "b_dec": gen.normal(size=D_IN), "threshold": np.abs(gen.normal(size=D_SAE))}  # fmt: skip
    np.savez(folder / "params.npz", **{k: v.astype(np.float32) for k, v in arrays.items()})
    sae = interp.sae.load(folder / "params.npz")
    assert sae.cfg.architecture == "jumprelu" and sae.cfg.hook_name == "blocks.1.hook_resid_post"
    assert sae.cfg.apply_b_dec_to_input is False  # Gemma Scope subtracts nothing from the input
    x = torch.randn(4, D_IN)
    pre = x @ torch.tensor(arrays["W_enc"], dtype=torch.float32) + torch.tensor(
        arrays["b_enc"], dtype=torch.float32
    )
    want = torch.where(
        pre > torch.tensor(arrays["threshold"], dtype=torch.float32), pre, torch.zeros_like(pre)
    )
    with torch.no_grad():
        assert torch.allclose(sae.encode(x), want.relu(), atol=1e-5)
    with pytest.raises(LoadError, match="cannot tell which hook"):
        flat = tmp_path / "params.npz"
        np.savez(flat, **{k: v.astype(np.float32) for k, v in arrays.items()})
        interp.sae.load(flat)
    assert interp.sae.load(flat, hook_name="blocks.0.hook_mlp_out").cfg.hook_name == "blocks.0.hook_mlp_out"


def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    sae = random_sae("jumprelu")
    path = interp.sae.save(sae, tmp_path / "sae")
    cfg = json.loads((path / "cfg.json").read_text())
    (path / "cfg.json").write_text(json.dumps(cfg | {"architecture": "hyperbolic"}))
    with pytest.raises(LoadError, match="unknown SAE architecture 'hyperbolic'"):
        interp.sae.load(path)
    (path / "cfg.json").write_text(json.dumps(cfg | {"architecture": "standard"}))
    with pytest.raises(LoadError, match="unexpected \\['threshold'\\]"):
        interp.sae.load(path)  # a jumprelu's threshold is not a standard SAE's tensor
    (path / "cfg.json").write_text(json.dumps(cfg | {"d_sae": D_SAE + 1}))
    with pytest.raises(LoadError, match="has shape .* implies"):
        interp.sae.load(path)
    (path / "cfg.json").write_text("{oops")
    with pytest.raises(LoadError, match="not valid JSON"):
        interp.sae.load(path)
    (path / "cfg.json").unlink()
    with pytest.raises(LoadError, match="cfg.json is missing"):
        interp.sae.load(path)
