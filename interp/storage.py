"""interp's own checkpoint format, written and read here: `model.safetensors` + `interp_config.json`.

`save` and `read` sit side by side so the format has one definition. This module knows no Hugging Face
names and does not import the model class (the model's `save` method calls `save` here). It also holds
`SafetensorsFile`, the one-tensor-at-a-time reader every loader uses.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from interp.config import ModelConfig
from interp.errors import LoadError, SaveError

INTERP_CONFIG = "interp_config.json"
WEIGHTS = "model.safetensors"


def save(model: Any, path: str | Path) -> Path:
    """Write a `HookedTransformer`'s weights, config, dtype and tokenizer; `interp.load(path)` round-trips it.

    Everything is written into a temporary folder beside `path` first and then moved into place file by
    file, so a save that fails midway leaves `path` as it was; other files already in `path` (a training
    script's tokenizer, eval results) are kept.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SaveError(f"cannot save the model to {path}: it exists and is not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.saving-", dir=path.parent))
    except OSError as e:
        raise SaveError(f"cannot save the model to {path}: {e}") from e
    moved = 0  # files of `path` already replaced, for the error message
    try:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        meta = {"format": "interp", "version": 1, "config": model.cfg.to_dict()}
        meta["default_prepend_bos"] = model.default_prepend_bos
        meta["dtype"] = str(model.W_E.dtype).removeprefix("torch.")  # `load` reads it back in this dtype
        (tmp / INTERP_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
        if model.tokenizer is not None:
            model.tokenizer.save_pretrained(str(tmp))
        path.mkdir(exist_ok=True)
        # The config goes last and the old one goes first: while the files move, the folder is not an
        # interp folder, so a crash then cannot leave a config beside another model's weights.
        files = sorted(tmp.iterdir(), key=lambda f: (f.name == INTERP_CONFIG, f.name))
        if (path / INTERP_CONFIG).exists():
            (path / INTERP_CONFIG).unlink()
            moved += 1
        for f in files:
            os.replace(f, path / f.name)
            moved += 1
    except Exception as e:
        left = (
            f"{path} is unchanged"
            if not moved
            else f"{path} was partly updated ({moved} file(s) removed or replaced) and has no {INTERP_CONFIG}, "
            f"so it will not load half-written"
        )
        raise SaveError(f"saving the model to {path} failed ({type(e).__name__}: {e}); {left}") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def is_interp_dir(path: Path) -> bool:
    return (path / INTERP_CONFIG).exists()


def read(path: Path) -> tuple[ModelConfig, dict[str, Any], SafetensorsFile]:
    """The config, the metadata (BOS policy, dtype, ...) and the (lazily read) weights of an interp folder."""
    try:
        meta = json.loads((path / INTERP_CONFIG).read_text())
        cfg = ModelConfig.from_dict(meta["config"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LoadError(f"{path / INTERP_CONFIG} is unreadable or malformed: {e}") from e
    return cfg, meta, SafetensorsFile(path / WEIGHTS)


def saved_dtype(meta: dict[str, Any], path: Path) -> torch.dtype:
    """The dtype a folder was saved in; folders written before interp recorded it load as float32."""
    name = meta.get("dtype", "float32")
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise LoadError(f"{path / INTERP_CONFIG}: dtype {name!r} is not a torch floating-point dtype")
    return dtype


# ---- reading safetensors one tensor at a time ---------------------------------------------------------------
_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64, "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}  # fmt: skip


_OWN_MAPPING = 1 << 20  # transient tensors of at least this many bytes get a mapping of their own


def transient_empty(shape: list[int], dtype: torch.dtype) -> Tensor:
    """An uninitialised CPU tensor for a short-lived copy (a tensor read from disk, or upcast).

    Large ones live in an anonymous mapping of their own, unmapped as soon as the tensor is dropped. A
    malloc'd one would raise glibc's mmap threshold when freed, and the parameters and buffers allocated
    after it would then fragment the heap: +0.4x the model's size in the peak RSS of a 277 MB load.
    """
    n = dtype.itemsize * math.prod(shape)
    if n < _OWN_MAPPING:
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(mmap.mmap(-1, n), dtype=torch.uint8).view(dtype).view(shape)


class SafetensorsFile(Mapping[str, Tensor]):
    """A safetensors file as a read-only mapping whose items are read from disk on access, one at a time.

    Plain `readinto` instead of `safetensors.safe_open`: safe_open maps the whole file, and every page a
    load touches stays resident until the handle closes, so a float32 load peaked at twice the model's size.
    The format is an 8-byte little-endian header length, a JSON header, then the raw little-endian data.
    """

    def __init__(self, file: Path) -> None:
        self.file = Path(file)
        if not self.file.exists():
            raise LoadError(f"missing weights file {self.file}")
        try:
            size = self.file.stat().st_size
            with open(self.file, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                if not 2 <= n <= size - 8:
                    raise ValueError(f"header length {n} does not fit a {size}-byte file")
                header = json.loads(f.read(n))
            header.pop("__metadata__", None)
            self.base = 8 + n
            self.entries: dict[str, tuple[torch.dtype, list[int], int, int]] = {}
            for key, e in header.items():
                start, end = e["data_offsets"]
                if e["dtype"] not in _DTYPES:
                    raise ValueError(f"tensor {key} has dtype {e['dtype']}, which interp cannot read")
                if not 0 <= start <= end <= size - self.base:
                    raise ValueError(f"tensor {key} lies past the end of the file")
                self.entries[key] = (_DTYPES[e["dtype"]], list(e["shape"]), start, end)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise LoadError(f"could not read {self.file}: it is truncated or corrupt ({e})") from e

    def __getitem__(self, key: str) -> Tensor:
        dtype, shape, start, end = self.entries[key]
        buf = transient_empty([end - start], torch.uint8)
        view = memoryview(buf.numpy())
        with open(self.file, "rb") as f:
            f.seek(self.base + start)
            done = 0
            while done < len(view):
                got = f.readinto(view[done:])
                if not got:
                    raise LoadError(f"could not read {self.file}: it is truncated or corrupt (at {key})")
                done += got
        return buf.view(dtype).reshape(shape)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def dtype(self, key: str) -> torch.dtype:
        return self.entries[key][0]
