"""Load models into `HookedTransformer`: Hugging Face folders, hub ids, in-memory HF models, and our own format.

This package is the only place that knows Hugging Face parameter names: one small module per family under
`families/`, each taking every tensor it needs through `Checkpoint.take`. interp's own format is
`interp.storage`, where `save` sits beside the reader.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interp import embedded, storage
from interp.compat import aliases
from interp.errors import LoadError, ParityError
from interp.loading.checkpoint import Checkpoint
from interp.loading.families import ARCHITECTURES, BY_MODEL_TYPE
from interp.loading.families.base import Family
from interp.loading.parity import max_logit_diff
from interp.loading.placement import DeviceMap, Placement, check_device
from interp.loading.sources import download, is_hf_model, load_tokenizer, looks_like_path, open_weights
from interp.loading.stream import build_empty, fill
from interp.transformer import HookedTransformer

__all__ = ["ARCHITECTURES", "LoadError", "ParityError", "load"]


def load(
    source: Any = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    *,
    tokenizer: Any = None,
    default_prepend_bos: bool | None = None,
    check_parity: bool = False,
    parity_atol: float = 1e-4,
    fold_ln: bool = False,
    center_writing_weights: bool = False,
    center_unembed: bool = False,
    fold_value_biases: bool = False,
    device_map: str | DeviceMap | None = None,
    max_memory: Mapping[Any, Any] | None = None,
    offload_folder: str | Path | None = None,
) -> HookedTransformer:
    """Load a model, in eval mode: an embedded name (default "tiny-facts-2"), a local folder, a hub id (or a
    TransformerLens name such as "gpt2-small", see interp.compat.aliases), or an HF model.

    `dtype`: Hugging Face checkpoints load in float32 unless told; interp's own folders in the dtype they
    were saved in. Tensors are streamed one at a time into a model built on the meta device, so a load needs
    about the model's own size in memory. `default_prepend_bos` sets the model's BOS policy; by default it
    is the family's where the family requires one (Gemma), else whether the tokenizer has a BOS token (Qwen
    has none). With `check_parity`, the Hugging Face model is run on a probe input and the largest logit
    difference is stored as `model.parity_max_diff`; above `parity_atol` ParityError is raised.
    Checkpoint code (`auto_map`, trust_remote_code) is never run.

    Weight processing is opt-in (TL 3's `from_pretrained` does all four by default; pass all four as True to
    reproduce a TL 3 notebook's numbers): see interp.compat.processing. With `center_unembed`, check_parity
    compares log-probs (the logits are shifted).

    Placement (Hugging Face accelerate, see interp.loading.placement): `device_map="auto"` spreads the
    blocks over the GPUs, then CPU memory, then `offload_folder` on disk, within `max_memory` (e.g.
    `{0: "20GiB", "cpu": "8GiB"}`); or a dict `{module: device}` such as `{"embed": "cpu", "blocks.0":
    "cuda:0", "blocks.1": "disk", ...}` ("" for the whole model). Blocks are the units of placement.
    Offloaded weights are written to `offload_folder` as they stream in and come back block by block.
    """
    source = embedded.DEFAULT if source is None else source
    place = None
    if device_map is not None:
        if device is not None:
            raise LoadError("give device= or device_map=, not both (device_map={'': device} is device=)")
        if fold_ln or center_writing_weights or center_unembed or fold_value_biases:
            raise LoadError(
                "weight processing (fold_ln, center_*, fold_value_biases) edits weights in place, which an "
                "offloaded model does not hold; process without device_map, save the model, load that folder"
            )
        place = Placement(device_map, max_memory, offload_folder)
    elif max_memory is not None or offload_folder is not None:
        raise LoadError("max_memory and offload_folder need device_map= ('auto' or a dict)")
    dev: torch.device | Placement = place if place is not None else _device(device)
    dtype = _dtype(dtype)
    if default_prepend_bos is not None and not isinstance(default_prepend_bos, bool):
        raise LoadError(f"default_prepend_bos must be True, False or None, not {default_prepend_bos!r}")
    if is_hf_model(source):
        reference: Any = source
        # state_dict() holds the caller's own tensors; streaming only reads them.
        arch = type(source).__name__
        model = _from_hf(source.config, arch, source.state_dict(), tokenizer, dtype, dev, default_prepend_bos)
    else:
        if not isinstance(source, (str, Path)):
            raise LoadError(
                f"source must be a model name, a folder, a hub id or a transformers model, not {type(source)}"
            )
        name = str(source)
        if name not in embedded.EMBEDDED and not Path(name).expanduser().exists():
            name = aliases.resolve(name)
        if name in embedded.EMBEDDED:
            path = embedded_dir(name)
        elif Path(name).expanduser().exists():
            path = Path(name).expanduser()
        elif looks_like_path(name):
            raise LoadError(f"no such folder: {name}")
        else:
            path = download(name, embedded=sorted(embedded.EMBEDDED))
        if check_parity and storage.is_interp_dir(path):
            raise LoadError("check_parity compares against Hugging Face; this source is interp's own format")
        reference = path
        model = _load_dir(path, tokenizer, dtype, dev, default_prepend_bos)
        model.model_name = str(source)
    model = model.eval()
    model.process_weights_(fold_ln, center_writing_weights, center_unembed, fold_value_biases)
    if check_parity:
        model.parity_max_diff = max_logit_diff(model, reference, parity_atol, log_probs=center_unembed)
    return model


def embedded_dir(name: str) -> Path:
    """The checkpoint folder of an embedded model, checked to be complete."""
    if name not in embedded.EMBEDDED:
        raise LoadError(f"unknown embedded model {name!r}; available: {', '.join(embedded.EMBEDDED)}")
    path = embedded.weights_dir(name)
    for f in (storage.INTERP_CONFIG, storage.WEIGHTS, "tokenizer.json"):
        if not (path / f).exists():
            raise LoadError(
                f"embedded model {name!r} is incomplete: {path / f} is missing "
                f"(reinstall interp, or rebuild it with its training script under experiments/)"
            )
    return path


def _load_dir(
    path: Path,
    tokenizer: Any,
    dtype: torch.dtype | None,
    device: torch.device | Placement,
    bos: bool | None,
) -> HookedTransformer:
    if not path.is_dir():
        raise LoadError(f"{path} is a file; expected a folder with config.json and weights")
    if storage.is_interp_dir(path):
        cfg, meta, weights = storage.read(path)
        tok = tokenizer if tokenizer is not None else load_tokenizer(path, fast=True)
        bos = meta.get("default_prepend_bos", True) if bos is None else bos
        model = build_empty(lambda: HookedTransformer(cfg, tok, default_prepend_bos=bos, init=False))
        dtype = dtype or storage.saved_dtype(meta, path)
        _fill(model, weights.items(), dtype, device, source=str(path / storage.WEIGHTS))
        model.original_architecture = meta.get("original_architecture", "interp")
        return model
    if not (path / "config.json").exists():
        raise LoadError(
            f"{path} has no config.json (Hugging Face) or {storage.INTERP_CONFIG} (interp): not a model folder"
        )
    arch = _architecture(_read_json(path / "config.json"), path / "config.json")
    from transformers import AutoConfig

    try:
        hf_cfg = AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except Exception as e:
        raise LoadError(f"transformers could not read {path / 'config.json'}: {e}") from e
    tok = tokenizer if tokenizer is not None else load_tokenizer(path)
    return _from_hf(hf_cfg, arch, open_weights(path), tok, dtype, device, bos)


def _from_hf(
    hf_cfg: Any,
    arch: str,
    tensors: Mapping[str, Tensor],
    tokenizer: Any,
    dtype: torch.dtype | None,
    device: torch.device | Placement,
    bos: bool | None,
) -> HookedTransformer:
    if arch not in ARCHITECTURES:
        raise LoadError(f"unsupported architecture {arch}; supported: {', '.join(ARCHITECTURES)}")
    family = ARCHITECTURES[arch]
    ck = Checkpoint(tensors, family.prefix)
    cfg = family.config(hf_cfg, ck)
    bos = _bos_policy(family, tokenizer) if bos is None else bos
    model = build_empty(lambda: HookedTransformer(cfg, tokenizer, default_prepend_bos=bos, init=False))
    _fill(model, family.weights(hf_cfg, cfg, ck), dtype or torch.float32, device, source=arch)
    ck.check_all_used(arch)
    model.model_name = str(getattr(hf_cfg, "name_or_path", "") or arch)
    model.original_architecture = arch
    return model


def _fill(
    model: HookedTransformer,
    items: Any,
    dtype: torch.dtype,
    device: torch.device | Placement,
    source: str,
) -> None:
    """Stream the weights in: onto one device, or as a placement plans (then attach accelerate's hooks)."""
    if isinstance(device, torch.device):
        return fill(model, items, dtype, device, source)
    device.plan(model, dtype)
    if not device.needs_hooks:  # one device for everything: a plain load onto it
        return fill(model, items, dtype, device.main, source)
    fill(model, items, dtype, device, source)
    device.dispatch(model)


def _bos_policy(family: Family, tokenizer: Any) -> bool:
    """The family's rule where it has one (Gemma needs BOS); else BOS iff the tokenizer has one (Qwen:
    no). With no tokenizer only token ids can be given, and the policy is moot: keep the old True."""
    if family.prepend_bos is not None:
        return family.prepend_bos
    return tokenizer is None or getattr(tokenizer, "bos_token_id", None) is not None


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise LoadError(f"could not read {file}: {e}") from e
    except json.JSONDecodeError as e:
        raise LoadError(f"{file} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise LoadError(f"{file} must hold a JSON object, not {type(data).__name__}")
    return data


def _architecture(raw: dict[str, Any], file: Path) -> str:
    """The HF class name interp implements this config with, read from the raw JSON before transformers
    sees it, so neither an unknown model_type nor an `auto_map` reaches transformers' own handling."""
    archs = raw.get("architectures") or []
    model_type = raw.get("model_type")
    arch = archs[0] if archs else BY_MODEL_TYPE.get(model_type)
    if arch in ARCHITECTURES:
        return arch  # with an auto_map too: interp runs its own implementation, never the folder's code
    supported = (
        f"supported architectures: {', '.join(ARCHITECTURES)}; model types: {', '.join(BY_MODEL_TYPE)}"
    )
    if raw.get("auto_map"):
        raise LoadError(
            f"{file} asks for the checkpoint's own Python code (auto_map: {sorted(raw['auto_map'])}) for "
            f"{archs[0] if archs else model_type!r}; interp does not run checkpoint code "
            f"(trust_remote_code is always False) and has no implementation of its own; {supported}"
        )
    if archs:
        raise LoadError(f"unsupported architecture {archs[0]}; supported: {', '.join(ARCHITECTURES)}")
    raise LoadError(f"{file}: unsupported model_type {model_type!r}; {supported}")


def _device(device: torch.device | str | None) -> torch.device:
    return check_device("cpu" if device is None else device)


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None:
        return None
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise LoadError(f"dtype must be a floating-point torch dtype (e.g. torch.bfloat16), not {dtype!r}")
    return resolved
