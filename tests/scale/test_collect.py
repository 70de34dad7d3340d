"""interp.collect writes what collect_activations holds, resumes to the same shards, and ShardStore trains
the same dictionary as the in-memory store."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import interp
from interp.analysis.specs import MLP, Head, MLPIn, ResidPost
from interp.sae import InMemoryStore, train
from interp.sae.store import collect_activations
from interp.scale import ShardStore, collect
from interp.scale.collect import site_key

CORPUS = [
    "The capital of France is Paris.",
    "The capital of Spain is",
    "Dylan Sawyer was born in",
    "Later she mentioned the apple, meaning the",
    "The language of Italy is",
    "Paris",
    "The capital of Japan is Tokyo, and the capital of Peru is Lima.",
] * 3  # 21 texts of different lengths: padded batches, shards that cut through batches


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load()


def shards(path) -> list[dict[str, torch.Tensor]]:
    manifest = json.loads((path / "manifest.json").read_text())
    return [load_file(path / s["file"]) for s in manifest["shards"]]


def test_shards_hold_exactly_what_collect_activations_keeps(model, tmp_path) -> None:
    # The same hooks in both runs: hooking a point can change which kernels run (in the last float bits).
    manifest = collect(
        model, [MLPIn(1), MLP(1)], CORPUS, tmp_path, batch_size=4, shard_tokens=37, progress=False
    )
    ref = collect_activations(
        model, "blocks.1.ln2.hook_normalized", CORPUS, target_hook="blocks.1.hook_mlp_out", batch_prompts=4,
        progress=False,
    )  # fmt: skip
    x_key, y_key = site_key(MLPIn(1)), site_key(MLP(1))
    assert (x_key, y_key) == ("blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out")
    parts = shards(tmp_path)
    assert [p[x_key].shape[0] for p in parts[:-1]] == [37] * (len(parts) - 1)
    assert manifest["complete"] and manifest["n_tokens"] == len(ref) and len(parts) == -(-len(ref) // 37)
    assert torch.equal(torch.cat([p[x_key] for p in parts]), ref.x)
    assert torch.equal(torch.cat([p[y_key] for p in parts]), ref.y)
    store = ShardStore(tmp_path, MLPIn(1), MLP(1))  # a transcoder's (x, y)
    assert (len(store), store.d_in, store.d_out) == (len(ref), ref.d_in, ref.d_out)
    a, b = (
        store.batches(16, torch.Generator().manual_seed(3)),
        ref.batches(16, torch.Generator().manual_seed(3)),
    )
    for _ in range(2 * len(ref) // 16):  # two epochs: the second permutation too
        (x, y), (rx, ry) = next(a), next(b)
        assert torch.equal(x, rx) and torch.equal(y, ry)
    x, y = next(ShardStore(tmp_path, MLP(1)).batches(8, torch.Generator().manual_seed(0)))  # an SAE's: y is x
    idx = torch.randperm(len(ref), generator=torch.Generator().manual_seed(0))[:8]
    assert torch.equal(x, ref.y[idx]) and torch.equal(y, ref.y[idx])


def test_a_head_is_stored_as_its_slice(model, tmp_path) -> None:
    collect(model, [Head(0, 1)], CORPUS[:5], tmp_path, batch_size=2, shard_tokens=1000, progress=False)
    ref = collect_activations(
        model, "blocks.0.attn.hook_z", CORPUS[:5], batch_prompts=2, progress=False, flatten_heads=True
    )
    d_head = model.cfg.d_head
    (part,) = shards(tmp_path)
    assert torch.equal(part[site_key(Head(0, 1))], ref.x[:, d_head : 2 * d_head])
    with pytest.raises(KeyError, match="was not collected here"):
        ShardStore(tmp_path, Head(0, 2))


def test_resume_after_an_interrupted_collect_gives_the_same_shards(model, tmp_path, monkeypatch) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    collect(model, ResidPost(0), CORPUS, whole, batch_size=3, shard_tokens=29, progress=False)
    real, calls = model.run_with_cache, []

    def dies_at_batch_4(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "run_with_cache", dies_at_batch_4)
    with pytest.raises(KeyboardInterrupt):
        collect(model, ResidPost(0), CORPUS, cut, batch_size=3, shard_tokens=29, progress=False)
    monkeypatch.setattr(model, "run_with_cache", real)
    before = json.loads((cut / "manifest.json").read_text())
    assert not before["complete"] and 0 < len(before["shards"]) < len(shards(whole))
    assert before["next"][1] > 0  # the next shard starts inside a batch: resuming must skip tokens
    collect(model, ResidPost(0), CORPUS, cut, batch_size=3, shard_tokens=29, progress=False)
    got, want = shards(cut), shards(whole)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g["blocks.0.hook_resid_post"], w["blocks.0.hook_resid_post"])
    with pytest.raises(ValueError, match="other settings"):
        collect(model, ResidPost(0), CORPUS, cut, batch_size=4, shard_tokens=29, progress=False)


def test_sae_training_from_disk_equals_training_in_memory(model, tmp_path) -> None:
    collect(model, [MLPIn(1), MLP(1)], CORPUS, tmp_path, batch_size=8, shard_tokens=50, progress=False)
    mem = collect_activations(
        model, "blocks.1.ln2.hook_normalized", CORPUS, target_hook="blocks.1.hook_mlp_out", batch_prompts=8,
        progress=False,
    )  # fmt: skip
    kw = dict(d_sae=32, steps=40, batch_size=32, seed=5, progress=False, threads=1)
    disk, r_disk = train(
        model, MLPIn(1), CORPUS, l1=1e-3, target=MLP(1), store=ShardStore(tmp_path, MLPIn(1), MLP(1)), **kw
    )
    in_memory, r_mem = train(
        model, MLPIn(1), CORPUS, l1=1e-3, target=MLP(1), store=InMemoryStore(mem.x, mem.y), **kw
    )
    for name, p in in_memory.state_dict().items():
        assert torch.equal(disk.state_dict()[name], p), name
    assert r_disk.explained_variance == r_mem.explained_variance


def test_bad_sites_are_clear_errors(model, tmp_path) -> None:
    with pytest.raises(ValueError, match="without pos"):
        collect(model, ResidPost(0, pos=-1), CORPUS, tmp_path, progress=False)
    with pytest.raises(TypeError, match="typed specs"):
        collect(model, "blocks.0.hook_resid_post", CORPUS, tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="run interp.collect there first"):
        ShardStore(tmp_path / "nothing", ResidPost(0))
