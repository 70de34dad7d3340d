"""An offloaded model's forward against the same model in memory: slowdown and peak anonymous memory.

A random Llama (d_model 1024, d_mlp 4096, 4 blocks, untied, float32: ~0.28 GB) is written to a temp folder,
then loaded three ways:
- `memory`: `interp.load(folder)`, everything in RAM;
- `half`: `device_map="auto"` with `max_memory` at half the model: the first blocks in RAM, the rest in
  `offload_folder` on disk, brought in block by block (accelerate's hooks);
- `disk`: `max_memory` of 20 MB: only the token embedding stays, every block comes from disk.
Printed side by side: the median forward time (batch 2 x 64 tokens), the three models' forwards interleaved
in one process so that a busy machine slows them alike, and its ratio to `memory`; and, each from a fresh
process so that each peak is its own, the load time and the peak RssAnon over the load and one forward
(sampled every millisecond and inside every block's forward). The offload files stay in the page cache
between forwards (the machine has the RAM), so this
measures interp's and accelerate's overhead of mapping and swapping weights, not the disk's bandwidth.

    .venv/bin/python experiments/benchmarks/offload.py [--forwards 3] [--layers 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

MODES = ("memory", "half", "disk")


def anon() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:"))


def write_model(folder: Path, layers: int) -> int:
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=layers, num_attention_heads=8,
                      num_key_value_heads=8, vocab_size=2048, max_position_embeddings=256,
                      tie_word_embeddings=False)  # fmt: skip
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in LlamaForCausalLM(cfg).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    cfg.save_pretrained(folder)
    tensors = {k: torch.randn(s, generator=gen) * 0.05 for k, s in shapes.items()}
    save_file(tensors, folder / "model.safetensors")
    return sum(t.numel() * t.element_size() for t in tensors.values())


def measure(folder: Path, mode: str, size: int) -> dict:
    """One mode, in this (fresh) process."""
    import interp

    torch.set_num_threads(1)
    offload = Path(tempfile.mkdtemp(prefix="offload-"))
    budget = {"half": size // 2, "disk": 20_000_000}.get(mode)
    place = {} if budget is None else {"device_map": "auto", "max_memory": {"cpu": budget}}

    def load():
        return interp.load(folder, **place, offload_folder=offload if place else None)

    base, peak, done = anon(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], anon())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    model = load()
    load_s = time.perf_counter() - start
    tokens = torch.randint(0, 2048, (2, 64), generator=torch.Generator().manual_seed(1))
    inside = [(f"blocks.{i}.hook_mlp_out", lambda a, h: peak.__setitem__(0, max(peak[0], anon())))
              for i in range(model.cfg.n_layers)]  # fmt: skip
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=inside)
    done.set()
    sampler.join()
    on_disk = sum(1 for d in (model.device_map or {}).values() if d == "disk")
    return {"load_s": load_s, "peak": peak[0] - base, "units_on_disk": on_disk}


def interleaved(folder: Path, size: int, forwards: int) -> dict[str, float]:
    """Median forward seconds per mode, the modes' forwards taking turns in this process."""
    import interp

    torch.set_num_threads(1)
    models = {"memory": interp.load(folder)}
    for mode, budget in (("half", size // 2), ("disk", 20_000_000)):
        offload = tempfile.mkdtemp(prefix="offload-")
        models[mode] = interp.load(
            folder, device_map="auto", max_memory={"cpu": budget}, offload_folder=offload
        )
    tokens = torch.randint(0, 2048, (2, 64), generator=torch.Generator().manual_seed(1))
    times: dict[str, list[float]] = {m: [] for m in models}
    with torch.no_grad():
        for model in models.values():
            model(tokens)  # warm-up
        for _ in range(forwards):
            for mode, model in models.items():
                start = time.perf_counter()
                model(tokens)
                times[mode].append(time.perf_counter() - start)
    return {m: statistics.median(t) for m, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--child", nargs=3, metavar=("FOLDER", "MODE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        folder, mode, size = args.child
        print(json.dumps(measure(Path(folder), mode, int(size))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        size = write_model(Path(tmp), args.layers)
        rows = {}
        for mode in MODES:
            cmd = [sys.executable, __file__, "--child", tmp, mode, str(size)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
        for mode, seconds in interleaved(Path(tmp), size, args.forwards).items():
            rows[mode]["forward_s"] = seconds
    ref = rows["memory"]
    print(f"random Llama, {args.layers} blocks, {size / 1e6:.0f} MB float32; batch 2 x 64 tokens, 1 thread")
    print(f"{'mode':<8} {'on disk':>8} {'load s':>7} {'forward s':>10} {'slowdown':>9} {'peak RssAnon':>13}")
    for mode, r in rows.items():
        print(
            f"{mode:<8} {r['units_on_disk']:>8} {r['load_s']:>7.2f} {r['forward_s']:>10.3f} "
            f"{r['forward_s'] / ref['forward_s']:>8.2f}x {r['peak'] / 1e6:>9.0f} MB "
            f"({r['peak'] / size:.2f}x model)"
        )


if __name__ == "__main__":
    main()
