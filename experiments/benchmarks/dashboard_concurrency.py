"""Two dashboard sessions at once, with the old global lock vs without it (thread-local hooks).

Each "session" is a thread that loops the Predict view's work under an ablation (`ModelView.compare` with a
head ablated, on its own prompt) on ONE shared model, as two Streamlit sessions do. The locked variant wraps
each call in one process-wide lock, as `apps/backend.py` did before hooks became context-local. Both use one
intra-op thread per forward (the backend's start-up setting). Printed: calls/s for each, and the ratio.

    .venv/bin/python experiments/benchmarks/dashboard_concurrency.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import threading
import time

import torch

import interp
from apps.model_view import Ablation, ModelView
from interp.analysis import Head

PROMPTS = ("The capital of France is", "The capital of Italy is")


def run(view: ModelView, lock: threading.Lock | None, seconds: float) -> float:
    counts = [0, 0]
    stop = time.perf_counter() + seconds
    ablation = Ablation(sites=(Head(1, 0),))

    def session(i: int) -> None:
        while time.perf_counter() < stop:
            if lock is None:
                view.compare(PROMPTS[i], ablation, None)
            else:
                with lock:
                    view.compare(PROMPTS[i], ablation, None)
            counts[i] += 1

    threads = [threading.Thread(target=session, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def latency_beside_a_trace(view: ModelView, lock: threading.Lock | None, n: int) -> float:
    """Median latency of session B's Predict call while session A keeps running fact tracing."""
    done = threading.Event()

    def tracer() -> None:
        while not done.is_set():
            if lock is None:
                view.trace(PROMPTS[0], "France", None, "mlp", 3)
            else:
                with lock:
                    view.trace(PROMPTS[0], "France", None, "mlp", 3)

    a = threading.Thread(target=tracer)
    a.start()
    times = []
    ablation = Ablation(sites=(Head(1, 0),))
    for _ in range(n):
        t0 = time.perf_counter()
        if lock is None:
            view.compare(PROMPTS[1], ablation, None)
        else:
            with lock:
                view.compare(PROMPTS[1], ablation, None)
        times.append(time.perf_counter() - t0)
    done.set()
    a.join()
    return sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--model", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    view = ModelView(interp.load(args.model))
    with torch.no_grad():
        view.compare(PROMPTS[0], Ablation(sites=(Head(1, 0),)), None)  # warm-up
        locked = run(view, threading.Lock(), args.seconds)
        free = run(view, None, args.seconds)
    print(f"two sessions on one model ({args.model or 'embedded default'}), {args.seconds:.0f} s each:")
    print(f"  global lock (before)   {locked:8.1f} calls/s")
    print(f"  no lock (now)          {free:8.1f} calls/s   {free / locked:.2f}x")
    with torch.no_grad():
        slow = latency_beside_a_trace(view, threading.Lock(), 20)
        fast = latency_beside_a_trace(view, None, 20)
    print("session B's Predict latency while session A runs fact tracing (median of 20):")
    print(f"  global lock (before)   {slow * 1e3:8.1f} ms")
    print(f"  no lock (now)          {fast * 1e3:8.1f} ms   {slow / fast:.1f}x faster")


if __name__ == "__main__":
    main()
