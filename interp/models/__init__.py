"""Embedded models shipped inside the package (safetensors + config + tokenizer.json)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
# name -> folder under interp/models/
EMBEDDED: dict[str, str] = {"tiny-facts": "tiny_facts"}
DEFAULT = "tiny-facts"


def embedded_path(name: str) -> Path:
    from interp.loading import INTERP_CONFIG, WEIGHTS, LoadError

    if name not in EMBEDDED:
        raise LoadError(f"unknown embedded model {name!r}; available: {', '.join(EMBEDDED)}")
    path = HERE / EMBEDDED[name]
    for f in (INTERP_CONFIG, WEIGHTS, "tokenizer.json"):
        if not (path / f).exists():
            raise LoadError(
                f"embedded model {name!r} is incomplete: {path / f} is missing "
                f"(reinstall interp, or rebuild it with experiments/train_tiny_facts.py)"
            )
    return path
