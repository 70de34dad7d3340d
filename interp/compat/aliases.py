"""TransformerLens's model names -> Hugging Face hub ids, so `interp.load("gpt2-small")` works as in TL.

A small table of the names TL notebooks use most; any hub id works as is. A name loads only if its
architecture has an interp family (see interp.loading.families).
"""

from __future__ import annotations

TL_ALIASES: dict[str, str] = {
    "gpt2-small": "gpt2",
    "gpt2-medium": "gpt2-medium",
    "gpt2-large": "gpt2-large",
    "gpt2-xl": "gpt2-xl",
    "distilgpt2": "distilgpt2",
    "distil-gpt2": "distilgpt2",
    "pythia-14m": "EleutherAI/pythia-14m",
    "pythia-70m": "EleutherAI/pythia-70m",
    "pythia-160m": "EleutherAI/pythia-160m",
    "pythia-410m": "EleutherAI/pythia-410m",
    "pythia-1b": "EleutherAI/pythia-1b",
    "pythia-1.4b": "EleutherAI/pythia-1.4b",
    "pythia-2.8b": "EleutherAI/pythia-2.8b",
    "pythia-6.9b": "EleutherAI/pythia-6.9b",
    "pythia-70m-deduped": "EleutherAI/pythia-70m-deduped",
    "pythia-160m-deduped": "EleutherAI/pythia-160m-deduped",
    "tiny-stories-1M": "roneneldan/TinyStories-1M",
    "tiny-stories-33M": "roneneldan/TinyStories-33M",
    "gemma-2b": "google/gemma-2b",
    "gemma-2-2b": "google/gemma-2-2b",
    "llama-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "mistral-7b": "mistralai/Mistral-7B-v0.1",
    "qwen2-0.5b": "Qwen/Qwen2-0.5B",
    "qwen2.5-0.5b": "Qwen/Qwen2.5-0.5B",
}


def resolve(name: str) -> str:
    """The hub id behind a TL name (unchanged when `name` is not one)."""
    return TL_ALIASES.get(name, name)
