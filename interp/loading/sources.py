"""Where a model comes from: in-memory HF models, local folders, hub ids; reading their weight files."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interp.errors import LoadError
from interp.storage import SafetensorsFile

ST_INDEX, ST_SINGLE = "model.safetensors.index.json", "model.safetensors"
BIN_INDEX, BIN_SINGLE = "pytorch_model.bin.index.json", "pytorch_model.bin"


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

        # Config, tokenizer and only the weight files `open_weights` reads: not a repo's
        # consolidated.safetensors, and pytorch_model.bin only where there are no safetensors.
        small = ["*.json", "*.txt", "*.model", "*.tiktoken"]
        path = Path(snapshot_download(repo_id, allow_patterns=[*small, "model*.safetensors"]))
        if not ((path / ST_INDEX).exists() or (path / ST_SINGLE).exists()):
            path = Path(snapshot_download(repo_id, allow_patterns=["pytorch_model*.bin", "*.json"]))
        return path
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
        # Never the folder's own tokenizer code (an auto_map in tokenizer_config.json).
        kwargs = {"trust_remote_code": False} if cls is AutoTokenizer else {}
        return cls.from_pretrained(str(path), **kwargs)
    except Exception as e:
        raise LoadError(f"the tokenizer files in {path} could not be loaded: {e}") from e


def open_weights(path: Path) -> Mapping[str, Tensor]:
    """The folder's weights as a name -> tensor mapping that reads each safetensors tensor on access.

    The files read are the ones transformers reads, in its order of precedence:
    `model.safetensors.index.json` (exactly the files it names), else `model.safetensors`, else
    `pytorch_model.bin.index.json`, else `pytorch_model.bin`. Other weight files in the folder (a Mistral
    repo's `consolidated.safetensors`, a stray copy) are never read. A name in two of the files read is an
    error, not a silent overwrite.
    """
    if (path / ST_INDEX).exists():
        return _join([SafetensorsFile(f) for f in _indexed_files(path / ST_INDEX)])
    if (path / ST_SINGLE).exists():
        return SafetensorsFile(path / ST_SINGLE)
    if (path / BIN_INDEX).exists():
        return _join([_read_bin(f) for f in _indexed_files(path / BIN_INDEX)])
    if (path / BIN_SINGLE).exists():
        return _read_bin(path / BIN_SINGLE)
    found = sorted(f.name for f in path.glob("*") if f.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    raise LoadError(
        f"no weights in {path}: expected {ST_INDEX}, {ST_SINGLE}, {BIN_INDEX} or {BIN_SINGLE} "
        f"(the files transformers reads)" + (f"; found only {found}" if found else "")
    )


def _indexed_files(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
        names = list(dict.fromkeys(weight_map.values()))  # each file once, in the index's order
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise LoadError(f"{index} is unreadable or malformed (it needs a weight_map): {e}") from e
    missing = [n for n in names if not (index.parent / n).is_file()]
    if missing:
        raise LoadError(f"{index} names weight files that are not in {index.parent}: {missing}")
    return [index.parent / n for n in names]


def _join(files: list[Mapping[str, Tensor]]) -> Mapping[str, Tensor]:
    owner: dict[str, Mapping[str, Tensor]] = {}
    for f in files:
        for key in f:
            if key in owner:
                raise LoadError(
                    f"tensor {key} is in both {_file_name(owner[key])} and {_file_name(f)}; "
                    f"a checkpoint must hold each tensor once"
                )
            owner[key] = f
    return _Joined(owner)


class _Joined(Mapping[str, Tensor]):
    """Several weight files seen as one mapping; each read still goes to the one file holding the name."""

    def __init__(self, owner: dict[str, Mapping[str, Tensor]]) -> None:
        self.owner = owner

    def __getitem__(self, key: str) -> Tensor:
        return self.owner[key][key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.owner)

    def __len__(self) -> int:
        return len(self.owner)


class _BinFile(dict):
    """A pytorch_model*.bin's state dict, remembering its file for error messages."""

    file: Path


def _read_bin(f: Path) -> Mapping[str, Tensor]:
    try:  # mmap: tensors are paged in as the converter takes them (pickles from old torch cannot mmap)
        try:
            state = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            state = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:
        raise LoadError(f"could not read {f} (weights_only=True): {e}") from e
    out = _BinFile(state)
    out.file = f
    return out


def _file_name(f: Mapping[str, Tensor]) -> str:
    return str(getattr(f, "file", f))
