"""Load models into `HookedTransformer`: Hugging Face folders, hub ids, in-memory HF models, and our own format.

This package is the only place that knows Hugging Face parameter names: one small module per family under
`families/`, each taking every tensor it needs through `Checkpoint.take`. interp's own format is
`interp.storage`, where `save` sits beside the reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interp import embedded, storage
from interp.errors import LoadError, ParityError
from interp.loading.checkpoint import Checkpoint
from interp.loading.families import ARCHITECTURES, BY_MODEL_TYPE
from interp.loading.parity import max_logit_diff
from interp.loading.sources import download, is_hf_model, load_tokenizer, looks_like_path, read_weights
from interp.transformer import HookedTransformer

__all__ = ["ARCHITECTURES", "LoadError", "ParityError", "load"]


def load(
    source: Any = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    *,
    tokenizer: Any = None,
    check_parity: bool = False,
    parity_atol: float = 1e-4,
) -> HookedTransformer:
    """Load a model: an embedded name (default "tiny-facts"), a local folder, a hub id, or an HF model.

    `dtype` defaults to float32. With `check_parity`, the Hugging Face model is run on a probe input and the
    largest logit difference is stored as `model.parity_max_diff`; above `parity_atol` ParityError is raised.
    """
    source = embedded.DEFAULT if source is None else source
    hf_model = None
    if is_hf_model(source):
        hf_model = source
        model = _from_hf_state(source.config, type(source).__name__, source.state_dict(), tokenizer)
    else:
        if not isinstance(source, (str, Path)):
            raise LoadError(
                f"source must be a model name, a folder, a hub id or a transformers model, not {type(source)}"
            )
        name = str(source)
        if name in embedded.EMBEDDED:
            path = embedded_dir(name)
        elif Path(name).expanduser().exists():
            path = Path(name).expanduser()
        elif looks_like_path(name):
            raise LoadError(f"no such folder: {name}")
        else:
            path = download(name, embedded=sorted(embedded.EMBEDDED))
        model = _load_dir(path, tokenizer)
    model = model.to(device=device or "cpu", dtype=dtype or torch.float32)
    if check_parity:
        if hf_model is None and storage.is_interp_dir(path):
            raise LoadError("check_parity compares against Hugging Face; this source is interp's own format")
        reference = hf_model if hf_model is not None else path
        model.parity_max_diff = max_logit_diff(model, reference, parity_atol)
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


def _load_dir(path: Path, tokenizer: Any) -> HookedTransformer:
    if not path.is_dir():
        raise LoadError(f"{path} is a file; expected a folder with config.json and weights")
    if storage.is_interp_dir(path):
        cfg, meta, state = storage.read(path)
        tok = tokenizer if tokenizer is not None else load_tokenizer(path, fast=True)
        bos = meta.get("default_prepend_bos", True)
        model = HookedTransformer(cfg, tok, default_prepend_bos=bos, init=False)
        _assign(model, state, source=str(path / storage.WEIGHTS))
        return model
    if not (path / "config.json").exists():
        raise LoadError(
            f"{path} has no config.json (Hugging Face) or {storage.INTERP_CONFIG} (interp): not a model folder"
        )
    from transformers import AutoConfig

    hf_cfg = AutoConfig.from_pretrained(str(path))
    arch = (getattr(hf_cfg, "architectures", None) or [BY_MODEL_TYPE.get(hf_cfg.model_type, hf_cfg.model_type)])[0]  # fmt: skip
    tok = tokenizer if tokenizer is not None else load_tokenizer(path)
    return _from_hf_state(hf_cfg, arch, read_weights(path), tok)


def _from_hf_state(hf_cfg: Any, arch: str, state: dict[str, Tensor], tokenizer: Any) -> HookedTransformer:
    if arch not in ARCHITECTURES:
        raise LoadError(f"unsupported architecture {arch}; supported: {', '.join(ARCHITECTURES)}")
    convert, prefix = ARCHITECTURES[arch]
    ck = Checkpoint(state, prefix)
    cfg, sd = convert(hf_cfg, ck)
    ck.check_all_used(arch)
    model = HookedTransformer(cfg, tokenizer, default_prepend_bos=True, init=False)
    _assign(model, sd, source=arch)
    return model


def _assign(model: HookedTransformer, state: dict[str, Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if missing or extra:
        raise LoadError(f"{source}: missing tensors {missing[:5]}, unexpected tensors {extra[:5]}")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise LoadError(
                f"{source}: tensor {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
            )
    model.load_state_dict(state)  # copies into our parameters, keeping their per-head memory layout
