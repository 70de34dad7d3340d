"""interp's own checkpoint format, written and read here: `model.safetensors` + `interp_config.json`.

`save` and `read` sit side by side so the format has one definition. This module knows no Hugging Face
names and does not import the model class (the model's `save` method calls `save` here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor

from interp.config import ModelConfig
from interp.errors import LoadError

INTERP_CONFIG = "interp_config.json"
WEIGHTS = "model.safetensors"


def save(model: Any, path: str | Path) -> Path:
    """Write a `HookedTransformer`'s weights, config and tokenizer; `interp.load(path)` round-trips it."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path / WEIGHTS))
    meta = {"format": "interp", "version": 1, "config": model.cfg.to_dict()}
    meta["default_prepend_bos"] = model.default_prepend_bos
    (path / INTERP_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    if model.tokenizer is not None:
        model.tokenizer.save_pretrained(str(path))
    return path


def is_interp_dir(path: Path) -> bool:
    return (path / INTERP_CONFIG).exists()


def read(path: Path) -> tuple[ModelConfig, dict[str, Any], dict[str, Tensor]]:
    """The config, the metadata (BOS policy, ...) and the state dict of an interp folder."""
    try:
        meta = json.loads((path / INTERP_CONFIG).read_text())
        cfg = ModelConfig.from_dict(meta["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LoadError(f"{path / INTERP_CONFIG} is unreadable or malformed: {e}") from e
    return cfg, meta, read_safetensors(path / WEIGHTS)


def read_safetensors(file: Path) -> dict[str, Tensor]:
    from safetensors.torch import load_file

    if not file.exists():
        raise LoadError(f"missing weights file {file}")
    try:
        return load_file(str(file))
    except Exception as e:  # SafetensorError has no stable import path across versions
        raise LoadError(f"could not read {file}: it is truncated or corrupt ({e})") from e
