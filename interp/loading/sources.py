"""Where a model comes from: in-memory HF models, local folders, hub ids; reading their weight files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interp.errors import LoadError
from interp.storage import read_safetensors


def is_hf_model(source: Any) -> bool:
    return (
        isinstance(source, torch.nn.Module)
        and hasattr(source, "config")
        and hasattr(source.config, "to_dict")
    )


def looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.endswith("/") or name.count("/") > 1 or "\\" in name


def download(repo_id: str, embedded: list[str]) -> Path:
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo_id):
        raise LoadError(
            f"{repo_id!r} is neither an existing folder nor a hub id; embedded models: {embedded}"
        )
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "pytorch_model*.bin", "*.txt", "*.model"]
        return Path(snapshot_download(repo_id, allow_patterns=patterns))
    except Exception as e:  # network, auth, missing repo: all mean the same to the caller
        raise LoadError(
            f"could not fetch {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {str(e)[:200]}). "
            f"Offline? Pass a local folder (config.json + *.safetensors) or an embedded model: {embedded}"
        ) from e


def load_tokenizer(path: Path, fast: bool = False) -> Any:
    """The folder's tokenizer, or None. `fast`: a tokenizer.json is there to be read as it is, which skips
    AutoTokenizer's class resolution (a third of a second, most of the embedded model's first load)."""
    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
        return None
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cls = PreTrainedTokenizerFast if fast and (path / "tokenizer.json").exists() else AutoTokenizer
    try:
        return cls.from_pretrained(str(path))
    except Exception as e:
        raise LoadError(f"the tokenizer files in {path} could not be loaded: {e}") from e


def read_weights(path: Path) -> dict[str, Tensor]:
    files = sorted(path.glob("*.safetensors"))
    if files:
        state: dict[str, Tensor] = {}
        for f in files:
            state.update(read_safetensors(f))
        return state
    bins = sorted(path.glob("pytorch_model*.bin"))
    if not bins:
        raise LoadError(f"no *.safetensors or pytorch_model.bin in {path}")
    state = {}
    for f in bins:
        try:
            state.update(torch.load(f, map_location="cpu", weights_only=True))
        except Exception as e:
            raise LoadError(f"could not read {f} (weights_only=True): {e}") from e
    return state
