"""`ShardStore`: the SAE trainer's `ActivationStore` over `interp.collect`'s shards, read from disk.

Each shard's tensors are memory-mapped (a safetensors file is an 8-byte header length, a JSON header and
the raw little-endian data), so only the rows a batch draws are read and the operating system's page cache
decides what stays in memory. Batches are drawn exactly as `InMemoryStore` draws them (one permutation of
every token per epoch from the trainer's generator), so training from disk gives the same dictionary.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interp.sae.store import shuffled_batches
from interp.scale.collect import MANIFEST, site_key

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


class ShardStore:
    """Activations at `x_site` (and `y_site`, for a transcoder) from a folder `interp.collect` wrote."""

    def __init__(self, out_dir: str | Path, x_site: Any, y_site: Any = None) -> None:
        self.path = Path(out_dir)
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self.path} has no {MANIFEST}: run interp.collect there first"
            ) from None
        if not manifest["shards"]:
            raise ValueError(f"{self.path} holds no shards yet")
        keys = manifest["settings"]["keys"]
        self.x_key = _key(x_site, keys)
        self.y_key = self.x_key if y_site is None else _key(y_site, keys)
        self.complete = bool(manifest.get("complete"))
        sizes = [s["n_tokens"] for s in manifest["shards"]]
        self.offsets = torch.tensor([0, *np.cumsum(sizes).tolist()])
        self._x = [_map(self.path / s["file"], self.x_key) for s in manifest["shards"]]
        self._y = (
            self._x
            if self.y_key == self.x_key
            else [_map(self.path / s["file"], self.y_key) for s in manifest["shards"]]
        )
        self.d_in, self.d_out = int(self._x[0].shape[1]), int(self._y[0].shape[1])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[tuple[Tensor, Tensor]]:
        """Endless shuffled batches, drawn as `InMemoryStore.batches` draws them."""
        for idx in shuffled_batches(len(self), batch_size, generator):
            x = self._gather(self._x, idx)
            yield x, (x if self._y is self._x else self._gather(self._y, idx))

    def _gather(self, maps: list[np.ndarray], idx: Tensor) -> Tensor:
        shard = torch.searchsorted(self.offsets, idx, right=True) - 1
        local = idx - self.offsets[shard]
        out = torch.empty(len(idx), maps[0].shape[1], dtype=torch.float32)
        for s in shard.unique().tolist():
            hit = shard == s
            out[hit] = torch.from_numpy(np.ascontiguousarray(maps[s][local[hit].numpy()])).float()
        return out


def _key(site: Any, keys: list[str]) -> str:
    """The tensor name of a site: a hook name given as text, or a spec's hook name."""
    name = site if isinstance(site, str) else site_key(site)
    if name not in keys:
        raise KeyError(f"{site!r} was not collected here; the shards hold {keys}")
    return name


def _map(path: Path, key: str) -> np.ndarray:
    """A read-only memory map of one tensor in a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    info = header[key]
    if info["dtype"] not in _DTYPES:
        raise ValueError(f"{path}: {key} has dtype {info['dtype']}; ShardStore reads {sorted(_DTYPES)}")
    begin, _ = info["data_offsets"]
    return np.memmap(
        path, dtype=_DTYPES[info["dtype"]], mode="r", offset=8 + n + begin, shape=tuple(info["shape"])
    )
