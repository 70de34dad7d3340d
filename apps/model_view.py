"""The dashboard's narrow view of a model, in the spirit of llm-transparency-tool's `TransparentLlm`.

`ModelView` wraps one `HookedTransformer` and answers the few questions every view asks: the prompt's
tokens, the predictions under an ablation, a layer's attention, the residual decomposition, context flow,
the logit lens, causal traces, patching, and one head explained step by step. It returns DataFrames,
numpy arrays and small dataclasses, never a tensor or a hook, and knows nothing of Streamlit: the
backend caches its answers and checks the user's input first; the views draw them.

Sites are interp's typed specs (`Head`, `Attn`, `MLP`, `Neuron`, `Resid`); an `Ablation` is a tuple of
them with the method and the reference prompts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from interp import HookedTransformer, ModelConfig
from interp.analysis import (
    MLP,
    Head,
    ablate,
    ablation_sweep,
    causal_trace,
    denoise,
    flow_graph,
    generate,
    logit_diff,
    logit_lens,
    neuron_vocab,
    prob,
    run_ablated,
    subject_span,
    top_neurons,
)
from interp.analysis.ablation import Method
from interp.analysis.explain import HeadExplanation, explain_head
from interp.analysis.generation import generate_ablated
from interp.analysis.specs import Spec
from interp.analysis.update import ResidualUpdate, residual_update
from interp.sae import SAE
from interp.sae.features import prompt_latents, top_contexts, vocab_projection
from interp.sae.latent import Latent

__all__ = ["Ablation", "HeadExplanation", "ModelView", "ResidualUpdate"]


@dataclass(frozen=True)
class Ablation:
    """What to ablate (sites) and how; hashable, so it keys cached results. Empty: nothing ablated."""

    sites: tuple[Spec, ...] = ()
    method: Method = "zero"
    reference: tuple[str, ...] = ()  # mean/resample reference prompts, each at least the prompt's length
    source: str = "prompts"  # "prompts": the reference above; "corpus": the model's embedded corpus

    def __bool__(self) -> bool:
        return bool(self.sites)


class ModelView:
    """Everything the dashboard's views read from a model (no grad; safe from many threads at once)."""

    def __init__(
        self, model: HookedTransformer, corpus: Sequence[str] = (), subjects: Sequence[str] = ()
    ) -> None:
        """`corpus`: texts for dataset-mean and resample references; `subjects`: names the model's world
        knows (fact tracing suggests the longest one found in a prompt). Both empty for a plain folder."""
        if model.tokenizer is None:
            raise ValueError("the dashboard needs a model with a tokenizer to read prompts")
        self.model = model.eval().requires_grad_(False)
        self.corpus = tuple(corpus)
        self.subjects = tuple(sorted(set(subjects), key=len, reverse=True))

    # --- the model and its tokens ----------------------------------------------------------------------

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def str_tokens(self, prompt: str) -> list[str]:
        """The prompt's tokens as the model reads them (BOS included)."""
        return self.model.to_str_tokens(prompt)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` alone (no BOS)."""
        return self.model.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> list[str]:
        return [self.model.tokenizer.decode([int(i)]) for i in ids]

    def suggest_subject(self, prompt: str) -> str:
        """The longest name the model's world knows that the prompt contains; else the prompt's longest
        capitalised word after the first (a guess for models without a world); else its longest word."""
        found = next((s for s in self.subjects if s in prompt), None)
        if found:
            return found
        words = [w.strip(".,;:!?'\"") for w in prompt.split()]
        capitalised = [w for w in words[1:] if w[:1].isupper()]
        return max(capitalised or words or [""], key=len)

    # --- predictions under an ablation -----------------------------------------------------------------

    def _bos(self) -> int:
        return len(self.model.to_tokens("x")[0]) - len(self.encode("x"))

    def reference_tokens(self, ablation: Ablation, n: int) -> tuple[torch.Tensor | None, str]:
        """The mean/resample reference as tokens [batch, n], and a sentence saying what it is.

        Reference prompts at least n tokens long are cut to their first n tokens (a per-position mean needs
        every position); the corpus is cut into n-token chunks (BOS first when the model uses one), whose
        mean is taken over every real token (dataset mean, the same vector at each position).
        """
        if ablation.method == "zero" or not ablation:
            return None, ""
        if ablation.source == "corpus":
            if not self.corpus:
                raise ValueError("this model has no embedded corpus: use reference prompts instead")
            bos = self._bos()
            stream = self.model.to_tokens(" ".join(self.corpus))[0]
            head, body = stream[:bos], stream[bos:]
            step = n - bos
            n_chunks = min(64, len(body) // max(step, 1))
            if n_chunks == 0:
                raise ValueError(f"the corpus is shorter than the prompt's {n} tokens")
            chunks = body[: n_chunks * step].reshape(n_chunks, step)
            tokens = torch.cat([head.expand(n_chunks, bos), chunks], dim=1)
            return tokens, f"{n_chunks} chunks of {n} tokens from the model's corpus"
        rows = [t[:n] for t in (self.model.to_tokens(r)[0] for r in ablation.reference) if len(t) >= n]
        if not rows:
            raise ValueError(
                f"{ablation.method.capitalize()} ablation needs reference prompts at least the prompt's {n} "
                "tokens long; none of the reference prompts is. Add longer ones, or use the corpus."
            )
        return torch.stack(rows), f"{len(rows)} reference prompts, each cut to its first {n} tokens"

    def next_token_probs(self, prompt: str, ablation: Ablation = Ablation()) -> np.ndarray:
        """P(next token) [d_vocab] after the prompt, with the ablation applied (none by default)."""
        if not ablation:
            logits = self.model(prompt)[0, -1]
        else:
            reference, _ = self.reference_tokens(ablation, len(self.str_tokens(prompt)))
            run = run_ablated(
                self.model, prompt, ablation.sites, method=ablation.method, reference=reference,
                per_position=ablation.source != "corpus",
            )  # fmt: skip
            logits = run.logits[0, -1]
        return logits.float().softmax(-1).numpy()  # float32 softmax, as interp's prob metric

    def compare(self, prompt: str, ablation: Ablation, target: int | None, k: int = 8) -> pd.DataFrame:
        """Before/after table: the top-k tokens of both runs and the target, with probabilities and change."""
        before = self.next_token_probs(prompt)
        after = self.next_token_probs(prompt, ablation) if ablation else before
        ids = list(dict.fromkeys([*np.argsort(-before)[:k], *np.argsort(-after)[:k]]))
        if target is not None and target not in ids:
            ids.append(target)
        rank_before = {int(i): r for r, i in enumerate(np.argsort(-before))}
        df = pd.DataFrame(
            {
                "token": self.decode(ids),
                "token_id": [int(i) for i in ids],
                "p_before": before[ids].astype(float),
                "p_after": after[ids].astype(float),
            }
        )
        df["change"] = df["p_after"] - df["p_before"]
        df["rank_before"] = [rank_before[int(i)] for i in ids]
        df["target"] = df["token_id"] == (target if target is not None else int(before.argmax()))
        return df.sort_values("p_before", ascending=False, ignore_index=True)

    def continuation(self, prompt: str, ablation: Ablation, n_tokens: int) -> tuple[str, str]:
        """Greedy continuations (new text only) without and with the ablation."""
        plain = generate(self.model, prompt, n_tokens)
        ablated = plain
        if ablation and ablation.method == "zero":
            ablated = generate_ablated(self.model, prompt, ablation.sites, n_tokens)
        elif ablation:
            ablated = self._generate_with_reference(prompt, ablation, n_tokens)
        start = len(self.model.to_string(self.model.to_tokens(prompt)[0]))
        return plain[start:], ablated[start:]

    def _generate_with_reference(self, prompt: str, ablation: Ablation, n_tokens: int) -> str:
        """generate_ablated's loop on a token reference: each step, the reference is extended by the
        tokens generated so far, so a new position gets the reference's activations on that continuation."""
        tokens = self.model.to_tokens(prompt)
        ref, _ = self.reference_tokens(ablation, tokens.shape[1])
        for _ in range(n_tokens):
            new = tokens[:, ref.shape[1] :].expand(ref.shape[0], -1)
            per_position = ablation.source != "corpus"
            with ablate(
                self.model,
                ablation.sites,
                ablation.method,
                torch.cat([ref, new], 1),
                per_position=per_position,
            ):
                resid = self.model(tokens, stop_at_layer=self.cfg.n_layers)
                logits = self.model.unembed(self.model.ln_final(resid))
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        return self.model.to_string(tokens[0])

    # --- attention and the residual stream -------------------------------------------------------------

    def attention(self, prompt: str, layer: int) -> np.ndarray:
        """The layer's attention pattern [head, dest, src]."""
        name = Head(layer, 0, part="pattern").hook_name
        _, cache = self.model.run_with_cache(prompt, names_filter=name)
        return cache[name][0].float().numpy()

    def explain_head(self, prompt: str, layer: int, head: int, dest: int) -> HeadExplanation:
        return explain_head(self.model, prompt, layer, head, dest)

    def residual_update(self, prompt: str, layer: int, pos: int, target: int | None) -> ResidualUpdate:
        """E' = E + ΔE of attention layer `layer` at `pos`, in tokens: lens of E and E', cos, ‖ΔE‖/‖E‖, and
        ΔE split by head with each part's direct logit attribution to the target and the tokens it promotes."""
        return residual_update(self.model, prompt, layer, pos, target)

    def residual_decomposition(self, prompt: str, pos: int = -1) -> pd.DataFrame:
        """The final residual at `pos` as the sum of what wrote it: embeddings, then each attention and MLP
        layer's ΔE; columns component, norm, and the share of the final residual along it."""
        _, cache = self.model.run_with_cache(prompt)
        parts, labels = cache.decompose_resid(pos_slice=pos, return_labels=True)
        parts = parts[:, 0].double()  # [component, d_model]
        total = parts.sum(0)
        return pd.DataFrame(
            {
                "component": labels,
                "norm": parts.norm(dim=-1).tolist(),
                "share": (parts @ total / total.norm() ** 2).tolist(),
            }
        )

    def flow_edges(self, prompt: str) -> pd.DataFrame:
        """Every context-flow edge (layer, dest, src, head, kind, importance); the backend thresholds them."""
        return flow_graph(self.model, prompt, threshold=0.0)

    def lens(self, prompt: str, target: int | None) -> pd.DataFrame:
        """logit_lens rows (layer, pos, top token, target probability and rank), one per (layer, position)."""
        tokens = self.str_tokens(prompt)
        df = logit_lens(self.model, prompt, target, k=3)
        df["token"] = [tokens[p] for p in df["pos"]]
        df["top_token"] = [t[0] for t in df["top_tokens"]]
        df["top_prob"] = [p[0] for p in df["top_probs"]]
        df["target_token"] = self.decode(df["target"].tolist())
        return df

    # --- fact tracing ----------------------------------------------------------------------------------

    def subject_span(self, prompt: str, subject: str) -> tuple[int, int]:
        """The subject's token span [start, end); ValueError when the subject is not in the prompt."""
        return subject_span(self.model, self.model.to_tokens(prompt), subject)

    def trace(self, prompt: str, subject: str, target: int | None, kind: str, window: int) -> pd.DataFrame:
        """causal_trace (10 noise samples, seed 0); attrs hold p_clean, p_corrupted, target, subject_span."""
        return causal_trace(self.model, prompt, subject, target, kind=kind, window=window, progress=False)

    def mlp_ablation_effects(self, prompt: str, subject: str, answer: int) -> pd.DataFrame:
        """P(answer) with each MLP layer zero-ablated, at every position and at the last subject token."""
        _, end = self.subject_span(prompt, subject)
        everywhere = MLP.every(self.model)
        at_subject = [MLP(layer, end - 1) for layer in range(self.cfg.n_layers)]
        frames = []
        for where, sites in (("all positions", everywhere), ("last subject token", at_subject)):
            df = ablation_sweep(self.model, prompt, sites, prob(answer), progress=False)
            frames.append(df[["layer", "metric", "effect"]].assign(where=where))
        return pd.concat(frames, ignore_index=True).rename(columns={"metric": "p_answer"})

    def layer_neurons(
        self, prompt: str, layer: int, pos: int, target: int | None, k: int = 10
    ) -> pd.DataFrame:
        """The layer's most active neurons at `pos`, the tokens their value vectors promote, their pull on
        the target (W_out[neuron] · W_U[:, target])."""
        df = top_neurons(self.model, prompt, k, layers=[layer], read_pos=pos)
        promotes, target_logit = [], []
        with self.model.weights_of(self.model.blocks[layer]):  # an offloaded block's, fetched
            W_out = self.model.blocks[layer].mlp.W_out.detach()
        for n in df["neuron"]:
            vocab = neuron_vocab(self.model, layer, int(n), k=5)
            promotes.append(" ".join(repr(t) for t in vocab[vocab["direction"] == "top"]["token"]))
            if target is not None:
                target_logit.append(float(W_out[int(n)] @ self.model.W_U[:, target]))
        df["promotes"] = promotes
        if target is not None:
            df["target_logit"] = target_logit
        return df

    # --- patching --------------------------------------------------------------------------------------

    def patching(
        self, clean: str, corrupted: str, sites: Sequence[Spec], metric: str, answer: int, wrong: int
    ) -> pd.DataFrame:
        """Denoising sweep (corrupted run, one clean activation restored per site), with token labels.

        `metric` is "logit_diff" (logit[answer] − logit[wrong]) or "prob" (P(answer)).
        """
        fn = logit_diff(answer, wrong) if metric == "logit_diff" else prob(answer)
        df = denoise(self.model, clean, corrupted, list(sites), fn, progress=False)
        if "pos" in df:
            tokens = self.str_tokens(clean)
            df.insert(df.columns.get_loc("pos") + 1, "token", [tokens[p] for p in df["pos"]])
        return df

    # --- dictionary features (interp.sae) --------------------------------------------------------------

    def prompt_latents(self, prompt: str, sae: SAE, k: int = 3) -> pd.DataFrame:
        """The k most active latents at each position: pos, token, latent, activation."""
        return prompt_latents(self.model, sae, prompt, k=k)

    def latent_contexts(self, sae: SAE, latent: int, n: int = 8) -> pd.DataFrame:
        """The latent's top contexts in the model's corpus (empty without a corpus)."""
        if not self.corpus:
            return pd.DataFrame(columns=["rank", "activation", "context"])
        df = top_contexts(self.model, sae, list(self.corpus), n=n, latents=[latent], progress=False)
        return df[df["activation"] > 0].reset_index(drop=True)

    def latent_vocab(self, sae: SAE, latent: int, k: int = 8) -> pd.DataFrame:
        """The tokens the latent's decoder direction promotes and suppresses (W_dec[latent] @ W_U)."""
        return vocab_projection(self.model, sae, k=k, latents=[latent])

    def probs_without_latent(self, prompt: str, sae: SAE, latent: int) -> np.ndarray:
        """P(next token) with the latent zero-ablated at every position (act · W_dec[latent] subtracted)."""
        run = run_ablated(self.model, prompt, [Latent(sae, latent)], method="zero")
        return run.logits[0, -1].float().softmax(-1).numpy()
