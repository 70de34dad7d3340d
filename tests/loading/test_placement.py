"""Placed and offloaded models (accelerate) compute what the in-memory model computes, to the last decimal."""

from __future__ import annotations

import json
import re
import threading
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

import interp
from interp.analysis import MLP, ResidPost, causal_trace, denoise, logit_diff
from interp.errors import LoadError

# The share of the model's bytes max_memory allows in RAM: some blocks stay, the rest go to disk.
KINDS = {"gpt2": 0.9, "llama-gqa": 0.7}


def _size(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.fixture(scope="module")
def pair(hf_dir, tmp_path_factory):
    """kind -> (in-memory model, the same checkpoint placed with max_memory below its size, offload folder)."""
    out = {}

    def get(kind):
        if kind not in out:
            ref = interp.load(hf_dir(kind))
            folder = tmp_path_factory.mktemp(f"offload-{kind}")
            budget = {"cpu": int(_size(ref) * KINDS[kind])}
            placed = interp.load(hf_dir(kind), device_map="auto", max_memory=budget, offload_folder=folder)
            out[kind] = ref, placed, folder
        return out[kind]

    return get


@pytest.mark.parametrize("kind", list(KINDS))
def test_part_of_the_model_sits_on_disk_and_the_logits_are_the_in_memory_ones(pair, kind, tokens):
    ref, placed, folder = pair(kind)
    devices = placed.device_map
    blocks = [devices[f"blocks.{i}"] for i in range(ref.cfg.n_layers)]
    assert "cpu" in blocks and "disk" in blocks, devices  # a real split, blocks as the units
    assert devices["embed"] == "cpu"
    index = json.loads((folder / "index.json").read_text())
    on_disk = [k for k in index if k.startswith("blocks.")]
    assert on_disk and all(placed.get_parameter(k).is_meta for k in on_disk)  # not held in memory
    torch.testing.assert_close(placed(tokens), ref(tokens), atol=1e-5, rtol=0)
    mask = torch.ones_like(tokens)
    mask[0, :3] = 0  # left padding: the masks built for each block
    torch.testing.assert_close(
        placed(tokens, attention_mask=mask), ref(tokens, attention_mask=mask), atol=1e-5, rtol=0
    )
    loss = placed(tokens, return_type="loss")
    torch.testing.assert_close(loss, ref(tokens, return_type="loss"), atol=1e-6, rtol=0)


def test_generation_with_a_kv_cache_runs_on_the_placed_model(pair, tokens):
    ref, placed, _ = pair("llama-gqa")
    a = ref.generate(tokens[:1, :5], max_new_tokens=6, do_sample=False, stop_at_eos=False, verbose=False)
    b = placed.generate(tokens[:1, :5], max_new_tokens=6, do_sample=False, stop_at_eos=False, verbose=False)
    assert torch.equal(a, b)


def test_offloaded_per_head_weights_come_back_in_their_memory_layout(pair, tokens):
    ref, placed, _ = pair("llama-gqa")
    layer = ref.cfg.n_layers - 1
    assert placed.device_map[f"blocks.{layer}"] == "disk"
    seen = {}

    def look(act, hook):
        attn = placed.blocks[layer].attn
        seen.update({n: (getattr(attn, n).is_meta, getattr(attn, n).stride()) for n in ("W_Q", "W_K", "W_V")})

    placed.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_q", look)])
    ref_attn = ref.blocks[layer].attn
    assert seen == {n: (False, getattr(ref_attn, n).stride()) for n in ("W_Q", "W_K", "W_V")}
    assert ref_attn.W_Q.stride() != ref_attn.W_Q.contiguous().stride()  # the layout under test is not trivial
    assert placed.blocks[layer].attn.W_Q.is_meta  # and gone again after the forward


@pytest.mark.parametrize("kind", list(KINDS))
def test_run_with_cache_gathers_every_activation_equal_to_the_in_memory_ones(pair, kind, tokens):
    ref, placed, _ = pair(kind)
    _, want = ref.run_with_cache(tokens)
    _, got = placed.run_with_cache(tokens, device="cpu")
    assert list(got) == list(want)
    for name in want:  # hook_result of offloaded blocks is computed in the forward (W_O is meta after it)
        torch.testing.assert_close(got[name], want[name], atol=1e-5, rtol=0, msg=name)


def test_patching_and_causal_tracing_on_the_placed_model_equal_the_in_memory_ones(pair, tokens):
    ref, placed, _ = pair("llama-gqa")
    clean, corrupted = tokens[:1], tokens[1:]
    cells = [ResidPost(layer, pos) for layer in range(ref.cfg.n_layers) for pos in range(0, 11, 3)]
    metric = logit_diff(3, 4)
    want, got = (
        denoise(ref, clean, corrupted, cells, metric),
        denoise(placed, clean, corrupted, cells, metric),
    )
    assert want["metric"].abs().max() > 0.1  # a sweep that measures something
    assert (got["metric"] - want["metric"]).abs().max() < 1e-5
    want = causal_trace(ref, clean[:, :6], (1, 3), answer=9, site=MLP, n_samples=2)
    got = causal_trace(placed, clean[:, :6], (1, 3), answer=9, site=MLP, n_samples=2)
    assert want["indirect_effect"].abs().max() > 1e-4
    assert (got["indirect_effect"] - want["indirect_effect"]).abs().max() < 1e-6
    assert got.attrs["p_clean"] == pytest.approx(want.attrs["p_clean"], abs=1e-6)


@pytest.mark.parametrize("kind", list(KINDS))
def test_weights_read_outside_a_forward_are_the_in_memory_ones(pair, kind, tokens, monkeypatch):
    """TL's stacked weights, cache decompositions and the analyses that read weights after the forward
    fetch an offloaded block's weights for the read (and drop them again)."""
    from interp.analysis import direct_logit_attribution, neuron_vocab
    from interp.analysis.explain import explain_head
    from interp.analysis.update import residual_update

    ref, placed, _ = pair(kind)
    last = ref.cfg.n_layers - 1
    assert placed.device_map[f"blocks.{last}"] == "disk"
    for name in ("W_Q", "W_K", "W_V", "W_O", "b_O", "W_in", "W_out", "b_out", "W_U", "W_E"):
        torch.testing.assert_close(getattr(placed, name), getattr(ref, name), atol=0, rtol=0, msg=name)
    torch.testing.assert_close(placed.accumulated_bias(last + 1), ref.accumulated_bias(last + 1))
    assert placed.blocks[last].attn.W_O.is_meta  # dropped again after each read
    _, want = ref.run_with_cache(tokens[:1])
    _, got = placed.run_with_cache(tokens[:1], device="cpu")
    for method in ("stack_head_results", "decompose_resid"):
        torch.testing.assert_close(getattr(got, method)(), getattr(want, method)(), atol=1e-5, rtol=0)
    torch.testing.assert_close(got.get_neuron_results(last), want.get_neuron_results(last), atol=1e-5, rtol=0)
    prompt, answer = tokens[:1, :8], int(tokens[0, 8])
    a, b = direct_logit_attribution(ref, prompt, answer), direct_logit_attribution(placed, prompt, answer)
    pd.testing.assert_frame_equal(b, a, check_exact=False, atol=1e-5, rtol=0)
    a, b = (
        residual_update(ref, prompt, last, target=answer),
        residual_update(placed, prompt, last, target=answer),
    )
    pd.testing.assert_frame_equal(b.parts, a.parts, check_exact=False, atol=1e-5, rtol=0)
    for m in (ref, placed):  # explain_head names the tokens a head promotes: any decoder will do
        monkeypatch.setattr(m, "tokenizer", SimpleNamespace(decode=lambda ids: f"<{ids[0]}>"))
    a, b = explain_head(ref, prompt, last, 1), explain_head(placed, prompt, last, 1)
    assert a.promoted == b.promoted
    pd.testing.assert_frame_equal(b.sources, a.sources, check_exact=False, atol=1e-5, rtol=0)
    pd.testing.assert_frame_equal(neuron_vocab(placed, last, 3), neuron_vocab(ref, last, 3))


def test_with_almost_no_memory_only_the_embedding_stays_and_bfloat16_round_trips_through_disk(
    hf_dir, tmp_path, tokens
):
    ref = interp.load(hf_dir("llama-mqa"), dtype=torch.bfloat16)  # tied: W_U is W_E
    placed = interp.load(
        hf_dir("llama-mqa"),
        dtype="bfloat16",
        device_map="auto",
        max_memory={"cpu": 1},
        offload_folder=tmp_path,
    )
    assert placed.device_map["embed"] == "cpu"  # W_E is read outside its forward: never offloaded
    assert {d for u, d in placed.device_map.items() if u != "embed"} == {"disk"}
    assert placed.blocks[0].mlp.W_in.dtype == torch.bfloat16  # the meta placeholder is in the load's dtype
    assert torch.equal(placed(tokens), ref(tokens))  # the same bfloat16 arithmetic, bit for bit


def test_an_interp_folder_loads_placed_too(hf_dir, tmp_path, tokens):
    ref = interp.load(hf_dir("gpt2-untied"))
    ref.save(tmp_path / "saved")
    placed = interp.load(
        tmp_path / "saved", device_map={"": "disk", "embed": "cpu"}, offload_folder=tmp_path / "o"
    )
    assert placed.unembed.W_U.is_meta
    torch.testing.assert_close(placed(tokens), ref(tokens), atol=1e-5, rtol=0)


def test_sequence_info_moves_once_per_device_and_hops_back_to_the_original():
    from interp.layers.sequence_info import SequenceInfo

    seq = SequenceInfo.build(2, 5, torch.tensor([[0, 1, 1, 1, 1], [1] * 5]), torch.device("cpu"))
    assert seq.to(torch.device("cpu")) is seq
    moved = seq.to(torch.device("meta"))  # a stand-in for a second device on a CPU-only machine
    assert moved.positions.is_meta and moved.key_valid.is_meta and moved.offset == seq.offset
    assert seq.to("meta") is moved and moved.to("cpu") is seq  # masks and RoPE tables: once per device


def test_a_dict_device_map_places_each_unit_where_it_says(hf_dir, tmp_path, tokens):
    ref = interp.load(hf_dir("gpt2"))
    device_map = {"embed": "cpu", "pos_embed": "disk", "blocks.0": "cpu", "blocks": "disk", "": "cpu"}
    placed = interp.load(hf_dir("gpt2"), device_map=device_map, offload_folder=tmp_path)
    assert placed.device_map == {"embed": "cpu", "pos_embed": "disk", "blocks.0": "cpu", "blocks.1": "disk",
                                 "blocks.2": "disk", "ln_final": "cpu"}  # fmt: skip
    assert placed.pos_embed.W_pos.is_meta and not placed.blocks[0].attn.W_Q.is_meta
    torch.testing.assert_close(placed(tokens), ref(tokens), atol=1e-5, rtol=0)
    whole = interp.load(hf_dir("gpt2"), device_map={"": "cpu"})  # one device: a plain load, no hooks
    assert not hasattr(whole.blocks[0], "_hf_hook")
    torch.testing.assert_close(whole(tokens), ref(tokens), atol=0, rtol=0)


def test_threads_with_their_own_hooks_on_one_offloaded_model_each_get_their_own_result(pair, tokens):
    ref, placed, _ = pair("llama-gqa")
    name = "blocks.1.hook_resid_post"

    def scale(k):
        return lambda act, hook: act * k

    want = {k: ref.run_with_hooks(tokens, fwd_hooks=[(name, scale(k))]) for k in range(4)}
    got, errors = {}, []

    def work(k):
        try:
            for _ in range(3):
                got[k] = placed.run_with_hooks(tokens, fwd_hooks=[(name, scale(k))])
        except Exception as e:  # surfaced below: a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for k in range(4):
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device_map": {"": "cuda:3"}}, "CUDA is not available"),
        ({"device_map": {"": "tpu"}}, "device_map['']: invalid device 'tpu'"),
        ({"device_map": {"blocks.7": "cpu", "": "cpu"}}, "'blocks.7', which is no module of this model"),
        ({"device_map": {"blocks.0.attn": "disk", "": "cpu"}}, "a part of 'blocks.0'"),
        ({"device_map": {"blocks": "cpu"}}, "does not place 'embed'"),
        ({"device_map": {"embed": "disk", "": "cpu"}, "offload_folder": "x"}, "must stay on a device"),
        ({"device_map": {"": "cpu", "blocks.1": "disk"}}, "needs offload_folder="),
        ({"device_map": "balanced"}, "allowed: 'auto' or a dict"),
        ({"device_map": "auto", "device": "cpu"}, "not both"),
        ({"device_map": "auto", "fold_ln": True}, "weight processing"),
        ({"max_memory": {"cpu": 100}}, "need device_map="),
        ({"device_map": "auto", "max_memory": {"cuda:5": "1GiB"}}, "CUDA is not available"),
    ],
)
def test_a_bad_placement_is_a_clear_load_error(hf_dir, kwargs, message):
    if torch.cuda.is_available() and "CUDA" in message:
        pytest.skip("this machine has CUDA")
    with pytest.raises(LoadError, match=re.escape(message)):
        interp.load(hf_dir("gpt2"), **kwargs)


# A fresh process: imports and a tiny warm-up load (accelerate too) first; then the anonymous memory
# (RssAnon: offload files are file-backed and don't count) is sampled by a thread every millisecond and inside
# every block's forward, when its weights are in, through a load and one forward: offloaded first, then in
# memory (one process: the imports alone take 20 s on a busy 2-core machine).
PROBE = r"""
import gc, json, sys, threading, time, torch, interp
torch.set_num_threads(1)
big, small, folder = sys.argv[1:4]

def anon():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("RssAnon:"))

def load(path, mode, sub):
    if mode == "memory":
        return interp.load(path)
    return interp.load(path, device_map="auto", max_memory={"cpu": 20_000_000}, offload_folder=folder + sub)

load(small, "offload", "/warm")(torch.tensor([[1, 2, 3]]))
out = {}
for mode in ("offload", "memory"):
    gc.collect()
    base, peak, done = anon(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    model = load(big, mode, "/big")
    inside = lambda act, hook: peak.__setitem__(0, max(peak[0], anon()))
    hooks = [(f"blocks.{l}.hook_mlp_out", inside) for l in range(model.cfg.n_layers)]
    model.run_with_hooks(torch.arange(32)[None], fwd_hooks=hooks)
    done.set()
    sampler.join()
    size = sum(p.numel() * p.element_size() for p in model.parameters())  # meta ones count their size too
    out[mode] = {"peak": peak[0] - base, "size": size, "map": model.device_map}
    del model
print(json.dumps(out))
"""


def test_offloading_keeps_the_peak_anonymous_memory_well_below_the_in_memory_models(tmp_path, hf_dir):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=8, vocab_size=1024, max_position_embeddings=64,
                      tie_word_embeddings=False)  # fmt: skip
    with torch.device("meta"):  # only the names and shapes: random values are written directly (fast)
        names = {k: v.shape for k, v in LlamaForCausalLM(cfg).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    big = tmp_path / "big"
    cfg.save_pretrained(big)
    save_file({k: torch.randn(s, generator=gen) * 0.05 for k, s in names.items()}, big / "model.safetensors")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(big), str(hf_dir("llama-gqa")), str(tmp_path)],
        capture_output=True, text=True, timeout=150, cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    peaks = json.loads(out.stdout.strip().splitlines()[-1])
    size = peaks["memory"]["size"]
    assert size > 250e6 and peaks["offload"]["size"] == size  # ~277 MB of float32
    assert set(peaks["offload"]["map"][f"blocks.{i}"] for i in range(4)) == {"disk"}
    mem, off = peaks["memory"]["peak"] / size, peaks["offload"]["peak"] / size
    print(f"peak RssAnon over a load and a forward: in memory {mem:.2f}x the model, offloaded {off:.2f}x")
    assert mem > 0.9  # the measurement sees the model when it is in memory
    assert off < 0.3 * mem, (mem, off)
