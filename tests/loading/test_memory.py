"""A load streams tensors into the model: its peak memory stays near the model's own size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

# Run in a fresh process: imports and a tiny warm-up load first, then the peak RSS is reset (Linux
# clear_refs "5") and read back (VmHWM) around each big load alone. Where the reset is refused, the
# lifetime peak counts, which only overstates the load's.
PROBE = r"""
import json, sys, torch, interp
from pathlib import Path
torch.set_num_threads(1)

def status(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))

interp.load(sys.argv[2])  # warm: transformers' config and tokenizer code paths imported
out = {}
for dtype in ("float32", "bfloat16"):
    model = None
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = status("VmRSS:")
    model = interp.load(sys.argv[1], dtype=getattr(torch, dtype))
    peak = status("VmHWM:")
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    assert model.W_E.dtype == getattr(torch, dtype)
    out[dtype] = {"ratio": (peak - before) / size, "size": size}
print(json.dumps(out))
"""


def test_peak_rss_of_a_load_stays_under_1_3x_the_model(tmp_path, hf_dir):
    from transformers import LlamaConfig, LlamaForCausalLM

    start = time.time()
    cfg = LlamaConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=8, vocab_size=1024, max_position_embeddings=64,
                      tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "big")  # ~277 MB of float32
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "big"), str(hf_dir("llama-gqa"))],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["float32"]["size"] > 250e6
    took = time.time() - start
    for dtype, r in m.items():  # bfloat16 from the float32 file: each tensor is cast as it streams in
        print(
            f"{dtype}: peak load RSS = {r['ratio']:.2f} x the model ({r['size'] / 1e6:.0f} MB), {took:.1f} s"
        )
        assert r["ratio"] < 1.3, f"{dtype}: a load's peak RSS is {r['ratio']:.2f}x the model (main: 2-4x)"
