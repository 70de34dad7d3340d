"""One small declarative module per Hugging Face family (see `base.Family`); this is their registry."""

from __future__ import annotations

from interp.loading.families import gpt2, llama
from interp.loading.families.base import Family

FAMILIES: tuple[Family, ...] = (gpt2.FAMILY, llama.LLAMA, llama.MISTRAL, llama.QWEN2)

# architecture (HF class name) -> family
ARCHITECTURES: dict[str, Family] = {arch: f for f in FAMILIES for arch in f.architectures}
# model_type -> architecture, for configs that do not list `architectures`
BY_MODEL_TYPE: dict[str, str] = {t: f.architectures[0] for f in FAMILIES for t in f.model_types}
