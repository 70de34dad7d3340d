"""Embedded models shipped inside the package, one home each: corpus, training, evaluation, card and weights.

`interp/embedded/<folder>/weights/` holds the checkpoint in interp's own format (see `interp.storage`).
This module is pure data: it names the models and where their weights and dictionaries sit; `interp.load`
reads them.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
# name -> the folder under interp/embedded/ that is the model's home
EMBEDDED: dict[str, str] = {"tiny-facts": "tiny_facts", "tiny-facts-2": "tiny_facts_2"}
DEFAULT = "tiny-facts-2"  # "tiny-facts" keeps naming the first checkpoint


def saes_dir(name: str) -> Path:
    """Where the embedded model `name` keeps its shipped dictionaries (SAELens folders, one per name)."""
    return HERE / EMBEDDED[name] / "saes"


def weights_dir(name: str) -> Path:
    """Where the embedded model `name` keeps its checkpoint (which may be missing; the loader checks)."""
    return HERE / EMBEDDED[name] / "weights"


def embedded_model(model: str | None) -> str | None:
    """The embedded model `model` is: by name (None: the default), or by its weights folder; None for any
    other model (a fine-tuned copy, a hub id)."""
    if model is None or model in EMBEDDED:
        return model or DEFAULT
    path = Path(model).expanduser()
    if path.is_dir():
        for name in EMBEDDED:
            if path.resolve() == weights_dir(name).resolve():
                return name
    return None
