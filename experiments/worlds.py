"""The synthetic world an experiment draws its prompts from, chosen by the model's name and `--lang`.

Each embedded model has its own world: `tiny-facts`' is English only, `tiny-facts-2`'s states the same
facts in English and Chinese (`--lang en|zh`). A model named by a folder or hub id gets the world of the
embedded model whose weights folder it is, and otherwise the default embedded model's world (its facts
are what a fine-tuned copy would know). The experiments only ask a `World` for prompts; scoring and every
measurement stay in `interp.analysis`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from interp.embedded import DEFAULT, embedded_model

LANGS: dict[str, tuple[str, ...]] = {"tiny-facts": ("en",), "tiny-facts-2": ("en", "zh")}


class WorldError(ValueError):
    """A language the model's world does not have; the experiments report it as a usage error."""


@dataclass(frozen=True)
class World:
    """Prompts of one embedded model's world in one language, in the experiments' terms."""

    name: str  # the embedded model whose world this is
    lang: str  # "en" or "zh"
    relations: tuple[str, ...]  # fact relations, in the world's order
    polysemes: dict[str, Any]  # ambiguous word -> ((domain, sense), (domain, sense))
    first_prompt: str  # traced first when the model answers it
    _facts: Callable[[], list]  # every fact Example of this language, all templates and splits
    _template0: Callable[[Any], bool]  # whether a fact Example uses its relation's template 0
    _disambiguation: Callable[[], list]
    _documents: Callable[[int, int], list[str]]  # (n_docs, seed) -> training documents

    @property
    def label(self) -> str:
        """How a report names the world: "tiny-facts-2 (zh)"."""
        return self.name if LANGS[self.name] == ("en",) else f"{self.name} ({self.lang})"

    @property
    def sentence_end(self) -> str:
        return "。" if self.lang == "zh" else "."

    def facts(self, relations: Sequence[str]) -> list:
        """Template-0 facts (always trained) of these relations, as `Example`s."""
        return [e for e in self._facts() if e.relation in relations and self._template0(e)]

    def ordinary_texts(self) -> list[str]:
        """Trained country-fact prompts: the ordinary-text baseline of context injection."""
        return [e.prompt for e in self._facts() if e.split == "train" and e.kind == "fact"]

    def disambiguation(self, words: Sequence[str]) -> list:
        return [e for e in self._disambiguation() if e.subject in words]

    def documents(self, n_docs: int, seed: int) -> list[str]:
        return self._documents(n_docs, seed)

    def word_text(self, word: str) -> str:
        """The ambiguous word as it stands in a prompt: " apple" (a token of its own), "苹果"."""
        return word if self.lang == "zh" else " " + word

    def split_scene(self, prompt: str) -> tuple[str, str]:
        """(scene, bridge) of a disambiguation prompt: "<scene>. <bridge>" or "<scene>。<bridge>"."""
        sep = "。" if self.lang == "zh" else ". "
        scene, bridge = prompt.split(sep, 1)
        return scene + self.sentence_end, bridge


def _tiny_facts() -> World:
    from interp.embedded.tiny_facts import corpus, world

    def template0(e: Any) -> bool:
        return e.prompt == corpus.render(corpus.FACT_TEMPLATES[e.relation][0], e.subject)

    return World(
        "tiny-facts",
        "en",
        tuple(corpus.FACT_TEMPLATES),
        world.POLYSEMES,
        "The capital of France is",
        corpus.fact_examples,
        template0,
        corpus.disambiguation_examples,
        lambda n, seed: corpus.training_documents(n, seed=seed),
    )


def _tiny_facts_2(lang: str) -> World:
    from interp.embedded.tiny_facts import world as tf_world
    from interp.embedded.tiny_facts_2 import corpus, world

    return World(
        "tiny-facts-2",
        lang,
        tuple(corpus.TEMPLATES[lang]),
        tf_world.POLYSEMES if lang == "en" else world.ZH_POLYSEMES,
        corpus.render(corpus.TEMPLATES[lang]["capital"][0], "France", lang),
        lambda: corpus.fact_examples(lang=lang),
        corpus.is_template0,
        lambda: corpus.disambiguation_examples(lang=lang),
        lambda n, seed: corpus.training_documents(n, seed=seed),
    )


def embedded_name(model: str | None) -> str:
    """The embedded model whose world serves `model`: itself, the one whose weights folder it is, or the
    default."""
    return embedded_model(model) or DEFAULT


def world_for(model: str | None, lang: str | None = None) -> World:
    """The world of `model` (see `embedded_name`) in `lang` (default: English); WorldError if it has none."""
    name = embedded_name(model)
    lang = lang or "en"
    if lang not in LANGS[name]:
        raise WorldError(
            f"--lang {lang}: the {name} world has {' and '.join(LANGS[name])} only"
            + (
                "; tiny-facts-2 is bilingual (--model tiny-facts-2 --lang zh)"
                if name != "tiny-facts-2"
                else ""
            )
        )
    return _tiny_facts() if name == "tiny-facts" else _tiny_facts_2(lang)
