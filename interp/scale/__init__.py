"""Scaling out: dataset-scale sweeps over many prompts (local or Ray workers), and activation datasets.

    from interp.scale import Pool, tasks
    with Pool("tiny-facts", backend="ray", workers=2) as pool:
        traces = pool.run(tasks.causal_trace_row, "facts.jsonl", out="runs/trace-shards")

    interp.collect(model, [ResidPost(2)], corpus, "acts/", batch_size=64, shard_tokens=65536)
    sae, report = interp.sae.train(model, ResidPost(2), corpus, d_sae=512, k=16, store=ShardStore("acts/", ResidPost(2)))

`pool.py` runs per-row tasks over shards (`tasks.py` holds one per analysis; `ray_backend.py` the Ray
actors); `prompts.py` reads prompt sets; `shards.py` the shard layout and its files; `collect.py` writes
activation shards and `shard_store.py` reads them back for the SAE trainer. Ray is imported only by the
Ray backend (the extra `interp[scale]`).
"""

from interp.scale.collect import collect
from interp.scale.pool import Pool, run_dataset
from interp.scale.prompts import PromptFileError, read_prompts
from interp.scale.shard_store import ShardStore
from interp.scale.shards import ShardFailure

__all__ = ["Pool", "PromptFileError", "ShardFailure", "ShardStore", "collect", "read_prompts", "run_dataset"]
