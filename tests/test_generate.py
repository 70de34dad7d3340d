"""Generation and the KV cache, against full forwards, Hugging Face `generate` and TransformerLens's sampler."""

from __future__ import annotations

import threading

import pytest
import torch
from conftest import HF_FACTORIES, make_hf

import interp
from interp import HookedTransformer, ModelConfig
from interp.analysis import MLP, Head, Neuron, Resid, ablate, steer
from interp.generation import generate, sample_logits
from interp.kv_cache import KVCache
from interp.layers.sequence_info import cached_positions

FAMILIES = sorted(HF_FACTORIES)


@pytest.fixture(scope="module")
def models():
    cache = {}

    def get(kind: str):
        if kind not in cache:
            hf = make_hf(kind)
            cache[kind] = (interp.load(hf), hf)
        return cache[kind]

    return get


def _tokens(batch: int, n_pos: int, seed: int = 1, vocab: int = 96) -> torch.Tensor:
    return torch.randint(0, vocab, (batch, n_pos), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", FAMILIES)
@pytest.mark.parametrize("explicit", [False, True], ids=["fused", "explicit"])
def test_cached_chunks_equal_one_full_forward(models, kind, explicit):
    """Prefill 6, then 1, then 3 positions (more than one query over cached keys), then 1: the logits of each
    chunk equal the full forward's at those positions (RoPE offsets, windows, learned positions)."""
    model, _ = models(kind)
    tokens = _tokens(2, 11)
    hooks = [("blocks.0.attn.hook_pattern", lambda a, h: None)] if explicit else []
    with model.hooks(hooks), torch.no_grad():
        full = model(tokens)
        cache = KVCache(model.cfg.n_layers)
        got = [model(tokens[:, a:b], past_kv_cache=cache) for a, b in [(0, 6), (6, 7), (7, 10), (10, 11)]]
    torch.testing.assert_close(torch.cat(got, dim=1), full, atol=1e-5, rtol=0)
    assert cache.length == 11 and cache.keys[0].shape[2] == 11


@pytest.mark.parametrize("kind", ["gpt2", "llama-gqa", "mistral-window"])
def test_cached_forward_with_left_padding(models, kind):
    model, _ = models(kind)
    tokens = _tokens(2, 9)
    mask = torch.ones_like(tokens)
    mask[1, :3] = 0  # row 1 is a 6-token prompt, left-padded
    with torch.no_grad():
        full = model(tokens, attention_mask=mask)
        cache = KVCache(model.cfg.n_layers)
        first = model(tokens[:, :7], attention_mask=mask[:, :7], past_kv_cache=cache)
        rest = model(tokens[:, 7:], past_kv_cache=cache)
        alone = model(tokens[1:, 3:])
    torch.testing.assert_close(torch.cat([first, rest], 1)[:, 3:], full[:, 3:], atol=1e-5, rtol=0)
    torch.testing.assert_close(rest[1], alone[0, -2:], atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", ["gpt2", "llama-gqa", "mistral-window", "qwen2-bias"])
def test_greedy_equals_hf_generate_with_and_without_cache(models, kind):
    model, hf = models(kind)
    tokens = _tokens(2, 5, seed=3)
    hf.generation_config.eos_token_id = None
    hf.generation_config.pad_token_id = 0
    with torch.no_grad():
        expected = hf.generate(
            tokens, attention_mask=torch.ones_like(tokens), max_new_tokens=12, do_sample=False
        )
    for cached in (True, False):
        got = generate(model, tokens, 12, do_sample=False, stop_at_eos=False, use_past_kv_cache=cached)
        assert torch.equal(got, expected), (kind, cached)
    # left-padded batch: row 1 is a 3-token prompt, as HF runs it with an attention mask
    mask = torch.ones_like(tokens)
    mask[1, :2] = 0
    with torch.no_grad():
        expected = hf.generate(tokens, attention_mask=mask, max_new_tokens=8, do_sample=False)
    got = generate(model, tokens, 8, do_sample=False, stop_at_eos=False, attention_mask=mask)
    assert torch.equal(got, expected)


def test_model_generate_follows_transformer_lens_conventions():
    model = interp.load()  # the embedded model, with its tokenizer
    tokens = model.to_tokens("The capital of France is")
    ids = model.generate(tokens, 4, do_sample=False, stop_at_eos=False, verbose=False)  # "input": ids
    assert isinstance(ids, torch.Tensor) and ids.shape == (1, tokens.shape[1] + 4)
    text = model.generate("The capital of France is", 4, do_sample=False, stop_at_eos=False, verbose=False)
    assert text == model.tokenizer.decode(ids[0, 1:].tolist())  # TL drops the BOS it prepended
    assert text.startswith("The capital of France is")
    assert model.generate(tokens, 4, temperature=0.0, return_type="str", verbose=False) == text
    pair = model.generate(["The city", "The capital of France is"], 3, do_sample=False, verbose=False)
    assert pair[0] == model.generate("The city", 3, do_sample=False, verbose=False)
    # stop_at_eos: with EOS declared as the greedy continuation's 2nd token, rows stop and pad with EOS
    eos = int(ids[0, tokens.shape[1] + 1])
    out = model.generate(tokens, 4, do_sample=False, eos_token_id=eos, verbose=False)
    assert out.shape[1] == tokens.shape[1] + 2 and int(out[0, -1]) == eos
    both = torch.cat([tokens, tokens.flip(1)])
    free = model.generate(both, 5, do_sample=False, stop_at_eos=False, verbose=False)
    stopped = model.generate(both, 5, do_sample=False, eos_token_id=[eos, 0], verbose=False)
    for row, ref in zip(stopped, free, strict=True):
        new, ref_new = row[tokens.shape[1] :], ref[tokens.shape[1] :]
        hit = [i for i, t in enumerate(ref_new.tolist()) if t in (eos, 0)]
        if hit:  # the row copies the free run up to its first stop token, then repeats EOS
            assert torch.equal(new[: hit[0] + 1], ref_new[: hit[0] + 1])
            assert set(new[hit[0] + 1 :].tolist()) <= {eos}
        else:
            assert torch.equal(new, ref_new[: len(new)])


def test_hooks_fire_on_every_new_position():
    """Under the cache each step's forward holds one position; cached_positions() says which one."""
    model, _ = _gpt2()
    tokens = _tokens(1, 4)
    seen: list[tuple[str, tuple[int, ...], int]] = []

    def record(act, hook):
        seen.append((hook.name, tuple(act.shape), cached_positions()))

    hooks = [("blocks.1.hook_resid_pre", record), ("blocks.1.attn.hook_pattern", record)]
    with model.hooks(hooks):
        generate(model, tokens, 3, do_sample=False, stop_at_eos=False, verbose=False)
    h, d = model.cfg.n_heads, model.cfg.d_model
    assert seen == [
        ("blocks.1.hook_resid_pre", (1, 4, d), 0),
        ("blocks.1.attn.hook_pattern", (1, h, 4, 4), 0),
        ("blocks.1.hook_resid_pre", (1, 1, d), 4),
        ("blocks.1.attn.hook_pattern", (1, h, 1, 5), 4),
        ("blocks.1.hook_resid_pre", (1, 1, d), 5),
        ("blocks.1.attn.hook_pattern", (1, h, 1, 6), 5),
    ]
    assert cached_positions() == 0 and model.hook_count() == 0


def _gpt2():
    """A 3-layer GPT-2-shaped model whose weights are large enough for edits to change its continuations."""
    model = HookedTransformer(
        ModelConfig(d_model=32, n_layers=3, n_heads=4, d_head=8, d_mlp=48, d_vocab=96, n_ctx=32)
    )
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if name.endswith(".w") and p.ndim == 1 else 0.0
            p.copy_(base + (0.1 if p.ndim == 1 else 0.3) * torch.randn(p.shape, generator=gen))
    return model.eval(), None


EDITS = {
    "zero head at pos 3": lambda m, ref: ablate(m, Head(1, 2, pos=3)),
    "zero neuron everywhere": lambda m, ref: ablate(m, Neuron(0, 5)),
    "mean MLP per position": lambda m, ref: ablate(m, MLP(1), method="mean", reference=ref),
    "mean pattern": lambda m, ref: ablate(m, Head(0, 1, part="pattern"), method="mean", reference=ref),
    "zero resid at pos 1 and 3": lambda m, ref: ablate(m, Resid(1, pos=(1, 3))),
    "steer at 0 and 7": lambda m, ref: steer(m, torch.linspace(-1, 1, 32), layer=1, coeff=8.0, positions=[0, 7]),
}  # fmt: skip


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_greedy_is_identical_with_and_without_cache_under_edits(edit):
    model, _ = _gpt2()
    tokens, reference = _tokens(2, 5, seed=4), _tokens(3, 14, seed=5)
    plain = generate(model, tokens, 8, do_sample=False, stop_at_eos=False, verbose=False)
    with EDITS[edit](model, reference):
        cached = generate(model, tokens, 8, do_sample=False, stop_at_eos=False, verbose=False)
        rerun = generate(model, tokens, 8, do_sample=False, stop_at_eos=False, use_past_kv_cache=False)
    assert torch.equal(cached, rerun)
    assert not torch.equal(cached, plain)  # the edit changes the continuation, so the test has teeth
    assert model.hook_count() == 0


def test_sampler_draws_as_transformer_lens():
    try:
        from transformer_lens.utilities.logits_utils import sample_logits as tl_sample
    except ImportError:  # TransformerLens 3
        from transformer_lens.utils import sample_logits as tl_sample
    logits = torch.randn(512, 96, generator=torch.Generator().manual_seed(0))  # 512 draws per setting
    tokens = _tokens(512, 7)
    for kw in [dict(temperature=0.7), dict(top_k=5), dict(top_p=0.6, temperature=1.3), dict(freq_penalty=2.0),
               dict(top_k=3, top_p=0.1), dict(temperature=0.0)]:  # fmt: skip
        torch.manual_seed(11)
        want = tl_sample(logits.clone(), tokens=tokens, **kw)
        torch.manual_seed(11)
        assert torch.equal(sample_logits(logits.clone(), tokens=tokens, **kw), want), kw
    probs = torch.zeros(96)
    for _ in range(50):  # top_p keeps only the smallest set holding top_p of the mass
        probs[sample_logits(logits[:1], top_p=0.5)] += 1
    kept = logits[0].softmax(-1).sort(descending=True)
    need = int((kept.values.cumsum(-1) < 0.5).sum()) + 1
    assert set(probs.nonzero().flatten().tolist()) <= set(kept.indices[:need].tolist())


def test_sampling_is_seeded_and_the_same_with_and_without_cache():
    model, _ = _gpt2()
    model = model.double()
    tokens = _tokens(3, 4)
    kw = dict(
        max_new_tokens=10, temperature=1.2, top_p=0.9, freq_penalty=0.5, stop_at_eos=False, verbose=False
    )
    a = generate(model, tokens, seed=7, **kw)
    assert torch.equal(a, generate(model, tokens, seed=7, use_past_kv_cache=False, **kw))
    assert not torch.equal(a, generate(model, tokens, seed=8, **kw))


def test_threads_generate_independently_on_one_model():
    """Each call owns its cache: concurrent generations on one model equal sequential ones."""
    model, _ = _gpt2()
    prompts = [_tokens(1, 3 + i, seed=i) for i in range(4)]
    expected = [generate(model, p, 10, do_sample=False, stop_at_eos=False, verbose=False) for p in prompts]
    got: dict[int, torch.Tensor] = {}

    def run(i: int) -> None:
        got[i] = generate(model, prompts[i], 10, do_sample=False, stop_at_eos=False, verbose=False)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert torch.equal(got[i], expected[i])


def test_kv_cache_freeze_and_misuse():
    model, _ = _gpt2()
    tokens = _tokens(2, 8)
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache(model.cfg.n_layers)
        model(tokens[:, :6], past_kv_cache=cache)
        cache.freeze()
        for _ in range(2):  # a frozen cache is read, never extended: the same step twice gives the same
            step = model(tokens[:, 6:], past_kv_cache=cache)
            torch.testing.assert_close(step, full[:, 6:], atol=1e-5, rtol=0)
        assert cache.length == 6 and cache.keys[0].shape[2] == 6
        cache.unfreeze()
        with pytest.raises(ValueError, match="holds a batch of 2"):
            model(tokens[:1, 6:], past_kv_cache=cache)
        with pytest.raises(ValueError, match="covers the new positions only"):
            cache.start(2, 2, torch.ones(2, 8), tokens.device)
        with pytest.raises(ValueError, match="n_ctx"):
            model(_tokens(2, model.cfg.n_ctx - 5), past_kv_cache=cache)
        broken = KVCache(model.cfg.n_layers)
        model(tokens[:, :4], past_kv_cache=broken, start_at_layer=None, stop_at_layer=1)
        with pytest.raises(ValueError, match="out of step at layer 1"):
            model(tokens[:, 4:5], past_kv_cache=broken)
    assert repr(cache).startswith(f"KVCache({model.cfg.n_layers} layers, 6 positions")
    with pytest.raises(ValueError, match="n_layers >= 1"):
        KVCache(0)


def test_bad_options_fail_clearly():
    model, _ = _gpt2()
    tokens = _tokens(1, 4)
    cases = [
        (dict(max_new_tokens=-1), "max_new_tokens must be an integer >= 0"),
        (dict(temperature=-0.5), "temperature must be >= 0"),
        (dict(top_k=0), "top_k must be a positive integer"),
        (dict(top_p=1.5), r"top_p must lie in \(0, 1\]"),
        (dict(freq_penalty=-1.0), "freq_penalty must be >= 0"),
        (dict(return_type="logits"), "return_type must be 'input', 'str' or 'tokens'"),
        (dict(padding_side="right"), "generate pads prompts on the left"),
        (dict(max_new_tokens=model.cfg.n_ctx), "more than the model's context"),
        (dict(stop_at_eos=True), "needs an end-of-sequence token"),  # the tiny HF model has no tokenizer
        (dict(attention_mask=torch.tensor([[1, 1, 1, 0]])), "needs left padding"),
        (dict(eos_token_id=10_000, stop_at_eos=True), r"eos_token_id must be token ids in \[0, 96\)"),
    ]
    for kw, message in cases:
        kw = {"max_new_tokens": 2, "stop_at_eos": False, "verbose": False} | kw
        with pytest.raises(ValueError, match=message):
            generate(model, tokens, **kw)
    with pytest.raises(ValueError, match="integer token ids"):
        generate(model, tokens.float(), 2, stop_at_eos=False)
    with pytest.raises(ValueError, match="no tokenizer"):
        generate(model, "text", 2, stop_at_eos=False)
    with pytest.raises(ValueError, match="no tokenizer"):
        generate(model, tokens, 2, stop_at_eos=False, return_type="str")


@pytest.mark.parametrize("kind", ["gpt2", "llama-gqa"])
def test_generate_equals_transformer_bridge_draw_for_draw(models, kind):
    """Greedy and sampled (same global seed) generations equal TransformerLens 4's on the same weights."""
    import copy

    from transformer_lens.model_bridge.sources import build_bridge_from_module

    model, hf = models(kind)
    arch = {"gpt2": "GPT2LMHeadModel", "llama-gqa": "LlamaForCausalLM"}[kind]
    bridge = build_bridge_from_module(copy.deepcopy(hf), arch, hf_config=hf.config)  # rewires its input
    tokens = _tokens(2, 5, seed=3)
    kw = dict(max_new_tokens=10, stop_at_eos=False, verbose=False)
    for sampling in (dict(do_sample=False), dict(temperature=1.3, top_k=20), dict(top_p=0.8)):
        torch.manual_seed(5)
        want = bridge.generate(tokens, **sampling, **kw)
        torch.manual_seed(5)
        assert torch.equal(model.generate(tokens, **sampling, **kw), want), sampling
