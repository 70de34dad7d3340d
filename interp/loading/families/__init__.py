"""One small declarative module per Hugging Face family (see `base.Family`); this is their registry."""

from __future__ import annotations

from interp.loading.families import gemma, gpt2, gpt_neox, gptj, llama, olmo2, opt, phi3, qwen3
from interp.loading.families.base import Family

FAMILIES: tuple[Family, ...] = (
    gpt2.FAMILY, llama.LLAMA, llama.MISTRAL, llama.QWEN2, qwen3.QWEN3, gemma.GEMMA, gemma.GEMMA2,
    gemma.GEMMA3, olmo2.OLMO2, phi3.PHI3, gpt_neox.NEOX, gptj.GPTJ, opt.OPT,
)  # fmt: skip

# architecture (HF class name) -> family
ARCHITECTURES: dict[str, Family] = {arch: f for f in FAMILIES for arch in f.architectures}
# model_type -> architecture, for configs that do not list `architectures`
BY_MODEL_TYPE: dict[str, str] = {t: f.architectures[0] for f in FAMILIES for t in f.model_types}
