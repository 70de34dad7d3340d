"""Activation datasets: stream a model's activations over a corpus into safetensors shards on disk.

    interp.collect(model, [ResidPost(2), MLPIn(1)], corpus, "acts/", batch_size=64, shard_tokens=65536)
    store = ShardStore("acts/", ResidPost(2))          # what `interp.sae.train(..., store=store)` reads

The corpus (texts, or token ids [n_prompts, pos]) runs in batches of `batch_size` prompts; every real
token's activation at each site (BOS dropped, padding never stored; the same rows `collect_activations`
keeps, as float32) is appended to a buffer that is written out every `shard_tokens` tokens as
`shard-NNNNN.safetensors`, one tensor per site [tokens, d]. `manifest.json` records the sites, the
settings and, for each shard written, its token count and where in the corpus the next one starts.

Resumable: a second call with the same settings keeps the shards the manifest lists and restarts from the
batch holding the next token, skipping the tokens already written. Batches always start at multiples of
`batch_size`, so the resumed shards hold the same numbers as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields, is_dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor
from tqdm.auto import tqdm

MANIFEST = "manifest.json"
Corpus = Sequence[str] | Tensor | Iterable[str]


def site_key(site: Any) -> str:
    """The name a site's tensor has in the shards: its hook name (`blocks.2.hook_resid_post`) for a site
    covering the whole activation, the hook name and the spec for a slice of it (a head, a neuron)."""
    try:
        name = site.hook_name
    except AttributeError:
        raise TypeError(
            f"{site!r} has no fixed hook: give a site of a fixed layer (ResidPost(n - 1), ...)"
        ) from None
    extra = [f.name for f in fields(site) if f.name not in ("layer", "pos")] if is_dataclass(site) else []
    return name if not extra else f"{name}:{site!r}"


def collect(
    model: Any,
    sites: Any,
    corpus: Corpus,
    out_dir: str | Path,
    batch_size: int = 64,
    shard_tokens: int = 65536,
    *,
    resume: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the activations at `sites` (typed specs, one or a list) over `corpus` to `out_dir`; returns
    the manifest. See the module docstring for the layout and for resuming."""
    sites = [sites] if not isinstance(sites, (list, tuple)) else list(sites)
    if not sites:
        raise ValueError("collect needs at least one site")
    if batch_size < 1 or shard_tokens < 1:
        raise ValueError(f"batch_size and shard_tokens must be >= 1, got {batch_size} and {shard_tokens}")
    resolved = [_resolve(model, s) for s in sites]
    hooks = [s.hook_name for s in resolved]
    names = [site_key(s) for s in resolved]
    if len(set(names)) != len(names):
        raise ValueError(f"sites name the same activation twice: {names}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "sites": [repr(s) for s in sites],
        "keys": names,
        "batch_size": batch_size,
        "shard_tokens": shard_tokens,
        "model": getattr(model.cfg, "model_name", None),
        "corpus": _corpus_hash(corpus),
    }
    manifest = _start(out, settings, resume)
    written = sum(s["n_tokens"] for s in manifest["shards"])
    skip_batch, skip_tokens = manifest["next"]
    buffers: dict[str, list[Tensor]] = {n: [] for n in names}
    buffered = 0
    bar = tqdm(desc="collect", unit="tok", initial=written, disable=not progress)
    batch_index = skip_batch
    try:
        for batch_index, (tokens, mask) in enumerate(
            _batches(model, corpus, batch_size, skip_batch), skip_batch
        ):
            _, cache = model.run_with_cache(
                tokens, attention_mask=mask, names_filter=list(dict.fromkeys(hooks))
            )
            keep = mask.bool().clone()
            keep[:, 0] = False  # BOS: its activations are outliers, as in collect_activations
            drop = skip_tokens if batch_index == skip_batch else 0
            for site, hook, name in zip(resolved, hooks, names, strict=True):
                act = cache[hook][site.select(slice(None))]
                kept = act[keep]  # [tokens, ...]: a neuron's is [tokens], stored as [tokens, 1]
                buffers[name].append(kept.reshape(kept.shape[0], -1).float()[drop:])
            n_new = int(keep.sum()) - drop
            buffered += n_new
            bar.update(n_new)
            while buffered >= shard_tokens:  # what is left over after a shard all comes from this batch
                left = buffered - shard_tokens
                _flush(
                    out,
                    manifest,
                    buffers,
                    shard_tokens,
                    [batch_index, drop + n_new - left] if left else [batch_index + 1, 0],
                )
                buffered = left
        if buffered:
            _flush(out, manifest, buffers, buffered, [batch_index + 1, 0])
        manifest["complete"] = True
        _write_manifest(out, manifest)
    finally:
        bar.close()
    return manifest


def _resolve(model: Any, site: Any) -> Any:
    at = site.at(model) if hasattr(site, "at") else site
    if not isinstance(getattr(at, "hook_name", None), str):
        raise TypeError(
            f"sites must be typed specs from interp.analysis.specs (e.g. ResidPost(2)), got {site!r}"
        )
    if getattr(at, "pos", None) is not None:
        raise ValueError(f"{site}: collect stores every real token; give the site without pos")
    if getattr(at, "pos_axis", 1) != 1:
        raise ValueError(
            f"{site}: collect stores [token, d] activations; attention patterns are not supported"
        )
    if at.hook_name not in model.hook_dict:
        raise ValueError(f"{site}: the model has no hook {at.hook_name}")
    return at


def _batches(model: Any, corpus: Corpus, batch_size: int, skip: int) -> Iterator[tuple[Tensor, Tensor]]:
    """(tokens, mask) for consecutive batches of prompts, from batch `skip` on (earlier ones not tokenized)."""
    if isinstance(corpus, Tensor):
        for i in range(skip * batch_size, corpus.shape[0], batch_size):
            chunk = corpus[i : i + batch_size]
            yield chunk, torch.ones_like(chunk)
        return
    it = iter(corpus)
    for _ in islice(_chunks(it, batch_size), skip):
        pass
    for chunk in _chunks(it, batch_size):
        yield model.to_tokens(chunk, return_attention_mask=True)


def _chunks(it: Iterator[str], n: int) -> Iterator[list[str]]:
    while chunk := list(islice(it, n)):
        yield chunk


def _flush(out: Path, manifest: dict, buffers: dict[str, list[Tensor]], n: int, next_at: list[int]) -> None:
    """Write the first `n` buffered tokens as the next shard; `next_at` is (batch, kept-token index in it)
    where the shard after it starts."""
    index = len(manifest["shards"])
    tensors = {}
    for name, parts in buffers.items():
        flat = torch.cat(parts)
        tensors[name] = flat[:n].contiguous()
        buffers[name] = [flat[n:]]
    path = out / f"shard-{index:05d}.safetensors"
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    manifest["shards"].append({"file": path.name, "n_tokens": n})
    manifest["dims"] = {name: int(t.shape[1]) for name, t in tensors.items()}
    manifest["n_tokens"] = sum(s["n_tokens"] for s in manifest["shards"])
    manifest["next"] = next_at
    _write_manifest(out, manifest)


def _start(out: Path, settings: dict, resume: bool) -> dict:
    path = out / MANIFEST
    if resume and path.exists():
        manifest = json.loads(path.read_text())
        if manifest["settings"] != settings:
            raise ValueError(
                f"cannot resume in {out}: its manifest was written with other settings "
                f"({manifest['settings']}); use a new folder or resume=False"
            )
        return manifest
    for old in out.glob("shard-*.safetensors"):
        old.unlink()
    manifest = {
        "settings": settings,
        "shards": [],
        "dims": {},
        "n_tokens": 0,
        "next": [0, 0],
        "complete": False,
    }
    _write_manifest(out, manifest)
    return manifest


def _write_manifest(out: Path, manifest: dict) -> None:
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)


def _corpus_hash(corpus: Corpus) -> str | None:
    """A hash of a corpus held in memory (None for a stream, which cannot be read twice)."""
    if isinstance(corpus, Tensor):
        return hashlib.sha256(corpus.cpu().numpy().tobytes()).hexdigest()
    if isinstance(corpus, Sequence):
        return hashlib.sha256("\x00".join(corpus).encode()).hexdigest()
    return None
