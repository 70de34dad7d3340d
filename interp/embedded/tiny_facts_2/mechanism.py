"""The mechanism figures of tiny-facts-2, measured with interp's own analyses, per language.

On person facts (template 0, answered correctly), whose subjects span several tokens ("Jordan Carter",
"乔丹·卡特"), it measures what ROME (Meng et al. 2022) and Geva et al. (2023) report for large models:

* `mlp_ie`: causal tracing's mean MLP indirect effect at the last subject token, per layer (window 1);
  `mlp_peak` its argmax (the target: neither the first nor the last layer);
* `mlp_ie_last`: the same traces' MLP indirect effect at the last token, where the answer is predicted
  (no target: it shows whether the lookup happens there instead of at the subject);
* `window_recovery`: mean IE of restoring the MLPs of layers peak-1..peak+1 at the last subject token,
  over the mean total effect (target ≥ 0.5);
* `attn_ie`: mean attention IE at the last token per layer, `attn_peak` its argmax (target: > mlp_peak);
* `knockout`: mean relative change of P(answer) when last → subject attention is blocked in one layer,
  `knockout_worst` the most damaging layer (target: in the upper half);
* `lens_top1`: share of facts whose answer is the logit lens's top-1 after l blocks (row 0 = the
  embeddings), `lens_first` the first row with a share ≥ 0.5 (target: > mlp_peak, i.e. only once the
  peak MLP has run).

`cross_lingual` patches the English clean run's MLP output at the last subject token into the
corrupted Chinese run of the same fact, at the Chinese last subject token (the prompts differ in
length, so positions are mapped by role), and reports the recovered share of P(answer).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import torch

from interp.analysis import causal_trace, knockout_sweep, logit_lens
from interp.embedded.tiny_facts_2.corpus import PERSON_RELATIONS, Example, fact_examples, is_template0
from interp.transformer import HookedTransformer


def token_span(model: HookedTransformer, prompt: str, text: str) -> tuple[int, int]:
    """Token span [start, end) of `text` in `prompt` (BOS prepended), from the tokenizer's offsets.

    Offsets are character positions in the prompt, so a byte-level token that holds part of a CJK
    character (and decodes to "�") is still placed correctly, unlike matching decoded pieces.
    """
    at = prompt.find(text)
    if not text or at < 0:
        raise ValueError(f"{text!r} not found in {prompt!r}")
    enc = model.tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    hits = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < at + len(text) and b > at]
    return hits[0] + 1, hits[-1] + 2  # +1: BOS


def person_facts(
    model: HookedTransformer, lang: str, n: int, seed: int = 0
) -> list[tuple[Example, tuple, int]]:
    """Up to `n` template-0 person facts in `lang` the model answers top-1: (example, span, answer id)."""
    pool = [e for e in fact_examples(lang=lang) if e.relation in PERSON_RELATIONS and is_template0(e)]
    random.Random(seed).shuffle(pool)
    out = []
    for e in pool:
        answer = model.tokenizer.encode(e.answer, add_special_tokens=False)[0]
        with torch.no_grad():
            top = int(model(e.prompt)[0, -1].argmax())
        if top == answer:
            out.append((e, token_span(model, e.prompt, e.subject), answer))
        if len(out) == n:
            break
    return out


def _at(df, pos: int) -> np.ndarray:
    return df[df.pos == pos].sort_values("layer").indirect_effect.to_numpy()


def measure(
    model: HookedTransformer, lang: str, n_facts: int = 96, n_samples: int = 5, seed: int = 0
) -> dict:
    """The figures of the module docstring for `lang`, means over up to `n_facts` facts."""
    facts = person_facts(model, lang, n_facts, seed)
    n = model.cfg.n_layers
    mlp, mlp_last, attn, ko, lens, te, win = [], [], [], [], [], [], []
    for e, (s, t), answer in facts:
        n_pos = model.to_tokens(e.prompt).shape[-1]
        kw = dict(n_samples=n_samples, seed=seed, progress=False)
        tr = causal_trace(model, e.prompt, (s, t), answer, kind="mlp", window=1, **kw)
        mlp.append(_at(tr, t - 1))
        mlp_last.append(_at(tr, n_pos - 1))  # the same trace, read where the answer is predicted
        te.append(tr.attrs["total_effect"])
        win.append(_at(causal_trace(model, e.prompt, (s, t), answer, kind="mlp", window=3, **kw), t - 1))
        attn.append(
            _at(causal_trace(model, e.prompt, (s, t), answer, kind="attn", window=1, **kw), n_pos - 1)
        )
        k = knockout_sweep(
            model, e.prompt, {"subject": list(range(s, t))}, window=1, answer=answer, progress=False
        )
        ko.append(k.sort_values("layer").relative_change.to_numpy())
        lz = logit_lens(model, e.prompt, answer, k=1, positions=-1)
        lens.append((lz.sort_values("layer").target_rank.to_numpy() == 0).astype(float))
    mlp_ie, attn_ie = np.mean(mlp, 0), np.mean(attn, 0)
    knock, lens_top1, te_mean = np.mean(ko, 0), np.mean(lens, 0), float(np.mean(te))
    peak = int(mlp_ie.argmax())
    recovery = float(np.mean(win, 0)[peak] / te_mean) if te_mean > 0 else float("nan")
    first = next((i for i, v in enumerate(lens_top1) if v >= 0.5), len(lens_top1))
    worst = int(knock.argmin())
    return {
        "lang": lang,
        "n_facts": len(facts),
        "total_effect": te_mean,
        "mlp_ie": mlp_ie.round(4).tolist(),
        "mlp_peak": peak,
        "mlp_ie_last": np.mean(mlp_last, 0).round(4).tolist(),
        "window_recovery": round(recovery, 4),
        "attn_ie": attn_ie.round(4).tolist(),
        "attn_peak": int(attn_ie.argmax()),
        "knockout": knock.round(4).tolist(),
        "knockout_worst": worst,
        "lens_top1": lens_top1.round(3).tolist(),
        "lens_first": first,
        "targets": {
            "mlp_peak_middle": 0 < peak < n - 1,
            "window_recovery_ge_0.5": recovery >= 0.5,
            "attn_peak_after_mlp_peak": int(attn_ie.argmax()) > peak,
            "knockout_upper_half": worst >= n // 2,
            "lens_after_mlp_peak": first > peak,
        },
    }


@torch.no_grad()
def cross_lingual(
    model: HookedTransformer, n_facts: int = 96, noise_scale: float = 3.0, seed: int = 0
) -> dict:
    """Recovery of P(Chinese answer) when the English run's MLP_l output at the subject is patched in.

    For each fact known in both languages: corrupt the Chinese subject's embeddings (seeded Gaussian
    noise, 3x the embedding std, as causal tracing does), then replace MLP_l's output at the Chinese last
    subject token by the clean English run's MLP_l output at the English last subject token. Recovery is
    (p_patched − p_corrupted) / (p_clean − p_corrupted), averaged over facts, per layer; the same with
    the clean Chinese MLP_l output (`same_language`) is the ceiling to compare with.
    """
    zh = {(f[0].key, f[0].relation): f for f in person_facts(model, "zh", 10**6, seed)}
    en = [f for f in person_facts(model, "en", 10**6, seed) if (f[0].key, f[0].relation) in zh][:n_facts]
    gen = torch.Generator().manual_seed(seed)
    std = noise_scale * float(model.W_E.float().std())
    cross, same = [], []
    for e_en, (_, t_en), _ in en:
        e_zh, (s_zh, t_zh), answer = zh[(e_en.key, e_en.relation)]
        noise = torch.randn(t_zh - s_zh, model.cfg.d_model, generator=gen) * std
        row = _patched_recovery(model, e_en.prompt, t_en - 1, e_zh.prompt, (s_zh, t_zh), answer, noise)
        cross.append(row[0])
        same.append(row[1])
    if not cross:
        return {"n_facts": 0, "cross_recovery": None, "same_language_recovery": None}
    return {
        "n_facts": len(cross),
        "cross_recovery": np.nanmean(cross, 0).round(4).tolist(),
        "same_language_recovery": np.nanmean(same, 0).round(4).tolist(),
    }


def _patched_recovery(
    model: HookedTransformer,
    source: str,
    source_pos: int,
    base: str,
    span: tuple[int, int],
    answer: int,
    noise: torch.Tensor,
) -> tuple[list[float], list[float]]:
    """Per layer: recovery of P(answer) in the corrupted `base` run when MLP_l's output at its last
    subject token comes from the clean `source` run at `source_pos`, and from the clean base run itself."""
    start, end = span
    names = [f"blocks.{layer}.hook_mlp_out" for layer in range(model.cfg.n_layers)]
    _, src = model.run_with_cache(source, names_filter=names)
    logits, own = model.run_with_cache(base, names_filter=names)

    def corrupt(x: torch.Tensor, hook: object) -> torch.Tensor:
        x = x.clone()
        x[:, start:end] += noise
        return x

    def p_with(hooks: list) -> float:
        out = model.run_with_hooks(base, fwd_hooks=[("hook_embed", corrupt), *hooks])
        return float(out[0, -1].softmax(-1)[answer])

    def put(value: torch.Tensor) -> Callable:
        def hook(x: torch.Tensor, hook: object) -> torch.Tensor:
            x = x.clone()
            x[:, end - 1] = value
            return x

        return hook

    p_clean, p_corr = float(logits[0, -1].softmax(-1)[answer]), p_with([])
    denom = p_clean - p_corr
    if denom <= 1e-6:  # nothing to recover: the noise did not hurt
        return [np.nan] * len(names), [np.nan] * len(names)
    cross = [(p_with([(n, put(src[n][0, source_pos]))]) - p_corr) / denom for n in names]
    same = [(p_with([(n, put(own[n][0, end - 1]))]) - p_corr) / denom for n in names]
    return cross, same


def report(model: HookedTransformer, n_facts: int = 96, n_samples: int = 5) -> dict:
    """Every figure of this module for both languages, as written into eval.json ("mechanism")."""
    out = {lang: measure(model, lang, n_facts, n_samples) for lang in ("en", "zh")}
    out["cross_lingual"] = cross_lingual(model, n_facts)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m interp.embedded.tiny_facts_2.mechanism [WEIGHTS_DIR]`: add the figures to eval.json."""
    import argparse
    import json
    from pathlib import Path

    import interp
    from interp.embedded import weights_dir

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("weights", nargs="?", type=Path, default=weights_dir("tiny-facts-2"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = interp.load(str(args.weights))
    path = args.weights / "eval.json"
    metrics = json.loads(path.read_text()) if path.exists() else {}
    metrics["mechanism"] = report(model)
    metrics["mechanism_met"] = {
        lang: [k for k, ok in metrics["mechanism"][lang]["targets"].items() if ok] for lang in ("en", "zh")
    }
    path.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(metrics["mechanism"], ensure_ascii=False))


if __name__ == "__main__":
    main()
