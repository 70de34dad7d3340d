"""Reading and writing sparse dictionaries: SAELens folders and Gemma Scope's `params.npz`.

No sae-lens import: the formats are read as SAELens 6 defines them (`cfg.json` + `sae_weights.safetensors`,
with its pre-6.0 key renames), so a folder SAELens wrote loads here and one written here loads in SAELens.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interp.errors import LoadError
from interp.sae.config import ARCHITECTURES, SAEConfig
from interp.sae.sae import SAE

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
NPZ = "params.npz"
# SAELens's architecture names for inference, and what they load as here (its batchtopk SAEs are saved
# for inference as JumpReLU).
ALIASES = {"batchtopk": "jumprelu", "matryoshka_batchtopk": "jumprelu"}
_PRE_6_RENAMES = {"hook_point": "hook_name", "hook_point_head_index": "hook_head_index", "activation_fn_str": "activation_fn"}  # fmt: skip
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}  # fmt: skip


def load(
    path: str | Path,
    hook_name: str | None = None,
    hook_name_out: str | None = None,
    dtype: torch.dtype | None = None,
) -> SAE:
    """An SAE, transcoder or skip transcoder from an SAELens folder, or a Gemma Scope `params.npz`.

    `path` may name a dictionary shipped with an embedded model, "tiny-facts/resid-0" (see `shipped()`).
    `hook_name` (and `hook_name_out` for transcoders) overrides where it attaches; a Gemma Scope npz names no
    hook, so it is read from the path (`.../layer_12/...` under a `-res` / `-mlp` / `-att` release) or must
    be given.
    """
    path = shipped_path(path)
    if path.is_file() and path.name.endswith(".npz"):
        return _load_npz(path, hook_name, dtype)
    if not path.is_dir():
        raise LoadError(f"no SAE at {path}: expected a folder with {CFG} + {WEIGHTS}, or a {NPZ} file")
    if (path / NPZ).exists() and not (path / CFG).exists():
        return _load_npz(path / NPZ, hook_name, dtype)
    for f in (CFG, WEIGHTS):
        if not (path / f).exists():
            raise LoadError(f"{path} is not an SAELens folder: {f} is missing (it needs {CFG} and {WEIGHTS})")
    try:
        raw = json.loads((path / CFG).read_text())
    except (OSError, ValueError) as e:
        raise LoadError(f"{path / CFG} is not valid JSON: {e}") from e
    cfg = config_from_saelens(raw, source=str(path / CFG))
    if hook_name or hook_name_out:
        cfg = cfg.replace(
            hook_name=hook_name or cfg.hook_name, hook_name_out=hook_name_out or cfg.hook_name_out
        )
    from safetensors.torch import load_file

    try:
        state = load_file(str(path / WEIGHTS))
    except Exception as e:
        raise LoadError(f"could not read {path / WEIGHTS}: it is truncated or corrupt ({e})") from e
    scale = state.pop("scaling_factor", None)  # older SAELens folders carry an all-ones one
    if scale is not None and not torch.allclose(scale, torch.ones_like(scale)):
        raise LoadError(f"{path / WEIGHTS}: a fine-tuning scaling_factor other than 1 is not supported")
    return _build(cfg, state, str(path / WEIGHTS), dtype or _DTYPES.get(str(raw.get("dtype")), torch.float32))


def shipped() -> list[str]:
    """The dictionaries shipped with the embedded models, as names `load` takes ("tiny-facts/resid-0")."""
    from interp.embedded import EMBEDDED, saes_dir

    return sorted(
        f"{model}/{d.name}"
        for model in EMBEDDED
        if saes_dir(model).is_dir()
        for d in saes_dir(model).iterdir()
        if (d / CFG).exists()
    )


def shipped_path(path: str | Path) -> Path:
    """`path` itself when it exists; "<embedded model>/<name>" → that model's shipped folder."""
    p = Path(path).expanduser()
    if p.exists() or not isinstance(path, str) or path.count("/") != 1:
        return p
    from interp.embedded import EMBEDDED, saes_dir

    model, name = path.split("/")
    if model not in EMBEDDED:
        return p
    folder = saes_dir(model) / name
    if not (folder / CFG).exists():
        own = [n for n in shipped() if n.startswith(f"{model}/")]
        raise LoadError(f"{model} ships no dictionary {name!r}; shipped: {', '.join(own) or 'none'}")
    return folder


def config_from_saelens(raw: dict[str, Any], source: str = CFG) -> SAEConfig:
    """SAELens `cfg.json` (6.x, or pre-6.0 flat) → SAEConfig, with clear errors for what is missing."""
    flat = {_PRE_6_RENAMES.get(k, k): v for k, v in raw.items() if k != "metadata"}
    flat.update({k: v for k, v in (raw.get("metadata") or {}).items() if v is not None or k not in flat})
    arch = flat.get("architecture", "standard")
    if flat.get("activation_fn") == "topk" and (flat.get("activation_fn_kwargs") or {}).get("k") is not None:
        arch, flat["k"] = "topk", flat["activation_fn_kwargs"]["k"]
    arch = ALIASES.get(arch, arch)
    if arch not in ARCHITECTURES:
        raise LoadError(f"{source}: unknown SAE architecture {arch!r}; supported: {', '.join(ARCHITECTURES)}")
    missing = [k for k in ("d_in", "d_sae", "hook_name") if flat.get(k) is None]
    if missing:
        raise LoadError(f"{source}: missing required fields {missing}")
    norm = flat.get("normalize_activations")
    norm = {True: "expected_average_only_in", False: "none", None: "none"}.get(norm, norm)
    try:
        return SAEConfig(
            architecture=arch, d_in=int(flat["d_in"]), d_sae=int(flat["d_sae"]), hook_name=flat["hook_name"],
            d_out=flat.get("d_out"), hook_name_out=flat.get("hook_name_out"),
            hook_head_index=flat.get("hook_head_index"),
            apply_b_dec_to_input=bool(flat.get("apply_b_dec_to_input", True)), normalize_activations=norm,
            k=flat.get("k"), rescale_acts_by_decoder_norm=bool(flat.get("rescale_acts_by_decoder_norm", False)),
            reshape_activations=flat.get("reshape_activations") or ("hook_z" if flat["hook_name"].endswith("hook_z") else "none"),
            model_from_pretrained_kwargs=dict(flat.get("model_from_pretrained_kwargs") or {}),
            model_name=flat.get("model_name"),
        )  # fmt: skip
    except ValueError as e:
        raise LoadError(f"{source}: {e}") from e


def save(sae: SAE, path: str | Path) -> Path:
    """Write an SAELens 6 folder that `sae_lens.SAE.load_from_disk` and `interp.sae.load` both read."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    c = sae.cfg
    dtype = next(k for k, v in _DTYPES.items() if v == sae.W_enc.dtype)
    cfg: dict[str, Any] = {
        "architecture": c.architecture, "d_in": c.d_in, "d_sae": c.d_sae, "dtype": dtype, "device": "cpu",
        "apply_b_dec_to_input": c.apply_b_dec_to_input, "normalize_activations": c.normalize_activations,
        "reshape_activations": c.reshape_activations,
    }  # fmt: skip
    if c.architecture == "topk":
        cfg |= {"k": c.k, "rescale_acts_by_decoder_norm": c.rescale_acts_by_decoder_norm}
    if c.is_transcoder:
        cfg["d_out"] = c.out_dim
    meta = {"hook_name": c.hook_name, "hook_head_index": None, "model_name": c.model_name, "sae_lens_version": "6.0.0",
            "sae_lens_training_version": "6.0.0", "model_from_pretrained_kwargs": c.model_from_pretrained_kwargs}  # fmt: skip
    if c.is_transcoder:
        meta["hook_name_out"] = c.hook_name_out
    cfg["metadata"] = meta
    save_file({k: v.detach().contiguous() for k, v in sae.state_dict().items()}, str(path / WEIGHTS))
    (path / CFG).write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def _load_npz(file: Path, hook_name: str | None, dtype: torch.dtype | None) -> SAE:
    import numpy as np

    try:
        with np.load(file) as data:
            state = {
                ("W_" + k[2:] if k.startswith("w_") else k): torch.from_numpy(data[k].copy()) for k in data
            }
    except Exception as e:
        raise LoadError(f"could not read {file} as a Gemma Scope params.npz: {e}") from e
    for key in ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"):
        if key not in state:
            raise LoadError(f"{file}: Gemma Scope params.npz is missing {key!r} (has {sorted(state)})")
    d_in, d_sae = state["W_enc"].shape
    hook = hook_name or _gemma_scope_hook(file)
    cfg = SAEConfig("jumprelu", d_in=d_in, d_sae=d_sae, hook_name=hook, apply_b_dec_to_input=False)
    return _build(cfg, state, str(file), dtype or torch.float32)


def _gemma_scope_hook(file: Path) -> str:
    """Gemma Scope's layout: <release>/layer_<L>/width_<W>/average_l0_<N>/params.npz."""
    text = file.as_posix()
    layer = re.search(r"layer_(\d+)", text)
    kinds = {"res": "hook_resid_post", "mlp": "hook_mlp_out", "att": "attn.hook_z"}
    kind = next((v for k, v in kinds.items() if re.search(rf"[-_/]{k}([-_/]|$)", text)), None)
    if layer is None or kind is None:
        raise LoadError(
            f"{file}: cannot tell which hook this Gemma Scope SAE reads from its path; "
            "pass hook_name=..., e.g. 'blocks.12.hook_resid_post'"
        )
    return f"blocks.{layer.group(1)}.{kind}"


def _build(cfg: SAEConfig, state: dict[str, Tensor], source: str, dtype: torch.dtype) -> SAE:
    sae = SAE(cfg, dtype=dtype)
    expected = sae.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise LoadError(
            f"{source}: a {cfg.architecture} SAE needs tensors {sorted(expected)}; missing {missing}, unexpected {extra}"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise LoadError(
                f"{source}: tensor {k} has shape {tuple(v.shape)}, but the config (d_in={cfg.d_in}, "
                f"d_sae={cfg.d_sae}, d_out={cfg.out_dim}) implies {tuple(expected[k].shape)}"
            )
    sae.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    return sae.eval()
