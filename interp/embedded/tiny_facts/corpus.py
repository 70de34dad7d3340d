"""Templates, the deterministic training-document stream and the evaluation sets of tiny-facts.

Why this shape: every capability we want to find inside the model is generated from a known table
(`world.py`), and every evaluation prompt carries a *split* saying how it relates to training:

* ``train``   - the exact prompt+answer sentence occurs in training documents;
* ``heldout`` - the fact is trained through other templates and the template is trained with other
  subjects, but this (fact, template) pair never occurs (tests generalisation across phrasings);
* ``unseen``  - the template is never trained for any subject (the last template of each relation).

Disambiguation uses the same idea on (word, scene) pairs; binding is purely in-context so its examples
are fresh random samples. All randomness goes through ``random.Random(int)`` and SHA-256, never through
Python's salted ``hash()``, so a seed gives identical output in every process.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from interp.embedded.tiny_facts.world import (
    BINDING_NAMES,
    COUNTRIES,
    COUNTRIES_WITH_THE,
    COUNTRY_BY_NAME,
    DOMAIN_SCENES,
    PEOPLE,
    PERSON_BY_NAME,
    POLYSEMES,
    Country,
)

# Template 0 of each relation is always trained; the LAST template is never trained ("unseen"); it is a
# new arrangement of words the corpus uses, so it tests generalisation across phrasings, not knowledge the
# closed world never states (MODEL_CARD.md, R6: "Prices in X are listed in the" scored 0). Of the
# ones in between, 1-2 per fact are held out. "{s}'s" becomes a possessive, "{s}" the subject (with
# "the" where the country needs it). No filled template may be a substring of another (tested), or a
# held-out sentence would hide inside a trained one.
FACT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "capital": (
        "The capital of {s} is",
        "{s}'s capital is",
        "{s}'s capital city is",
        "The capital city of {s} is",
        "The seat of government of {s} is in",
        "In {s}, the capital is",
        "{s} has its capital in",
    ),
    "language": (
        "The official language of {s} is",
        "{s}'s official language is",
        "People in {s} speak",
        "In {s}, people speak",
        "The main language spoken in {s} is",
        "{s}'s main language is",
        "The national language of {s} is",
    ),
    "currency": (
        "The currency of {s} is the",
        "{s}'s currency is the",
        "In {s}, people pay with the",
        "The official currency of {s} is the",
        "{s} uses the",
        "The money used in {s} is the",
        "The money of {s} is the",
    ),
    "continent": (
        "{s} is located in",
        "{s} is a country in",
        "{s} is in",
        "The continent of {s} is",
        "{s} is found on the continent of",
        "{s} belongs to the continent of",
        "{s} is a country on the continent of",
    ),
    "birth_country": (
        "{s} was born in",
        "The birthplace of {s} is",
        "{s} is originally from",
        "{s}'s home country is",
        "The country where {s} was born is",
        "{s} grew up in",
    ),
    "job": (
        "{s} works as a",
        "By profession, {s} is a",
        "{s} earns a living as a",
        "{s} is employed as a",
        "{s} has a job as a",
        "{s} trained to be a",
    ),
    "sport": (
        "{s} plays",
        "{s}'s favorite sport is",
        "The sport that {s} plays is",
        "{s} spends weekends playing",
        "The favorite sport of {s} is",
        "{s}'s sport is",
    ),
}
COUNTRY_RELATIONS: tuple[str, ...] = ("capital", "language", "currency", "continent")
PERSON_RELATIONS: tuple[str, ...] = ("birth_country", "job", "sport")

# The ambiguous word comes several tokens after the scene; the fixed suffix ", meaning the" makes the
# next token a clean read-out of the sense.
BRIDGES: tuple[str, ...] = (
    "Later she mentioned the {w}",
    "Then he pointed at the {w}",
    "After a while they talked about the {w}",
    "Everyone kept looking at the {w}",
)
QUERY_SUFFIX = ", meaning the"

# Binding: "{n} lives in {place}." then a query; place is the capital or the country (50/50).
BINDING_QUERIES: dict[str, str] = {"language": "{n} speaks", "currency": "{n} pays with the"}

# Distractors: sentences with no fact in them, some naming countries/cities/people in passing so that a
# country mention alone does not predict a fact.
DISTRACTORS: tuple[str, ...] = (
    "My friend visited {country} last summer.",
    "We watched a film about {country}.",
    "The flight to {city} was delayed.",
    "Our neighbor just came back from {city}.",
    "Tickets to {country} are cheap in spring.",
    "The news mentioned {city} twice.",
    "{person} bought a new bike.",
    "{person} called an old friend.",
    "{person} read a long book about {country}.",
    "The weather was cold.",
    "It rained all day.",
    "The train was late again.",
    "The meeting ended early.",
    "She opened the window.",
    "The shop closed at noon.",
    "He forgot his umbrella.",
)

# Everyday sentences that use every word of every template, never-trained ones included, outside any fact.
# Why: a word the corpus never shows as input keeps a junk embedding (it is only ever trained as an unlikely
# output), so a never-trained template built from such words cannot be read at all; a real language model
# has seen its words before. Each avoids the template's own frame ("is part of", "to be a", "good at",
# "grew up in", "listed in the"), so no template continuation is taught here.
WORD_SENTENCES: tuple[str, ...] = (
    "The bird spread its wings.",
    "The old car lost its wheel.",
    "The national park was quiet.",
    "They sang the national song.",
    "Prices went up again.",
    "All the prices were low.",
    "The menu listed every dish.",
    "Part of the cake was gone.",
    "She read part of the letter.",
    "The plants grew fast.",
    "The children grew tall.",
    "It will be sunny tomorrow.",
    "The dog was trained well.",
    "They trained every morning.",
    "The film was really long.",
    "The bread smelled good.",
)


@dataclass(frozen=True)
class Example:
    """One next-token evaluation item: the model should continue `prompt` with the first token of `answer`."""

    prompt: str  # ends right before the answer, no trailing space
    answer: str  # leading space; only its first token is scored
    kind: str  # "fact" | "person" | "disambiguation" | "binding1" | "binding2"
    split: str  # "train" | "heldout" | "unseen"
    subject: str  # country, person, ambiguous word, or queried binding name
    relation: str  # relation name, or the sense word for disambiguation

    @property
    def text(self) -> str:
        """The full sentence as it would appear in a training document (without the final period)."""
        return self.prompt + self.answer


def _h(*parts: object) -> int:
    """Stable 64-bit hash (SHA-256), identical across processes, unlike the builtin `hash`."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def display_name(subject: str) -> str:
    """How a subject reads mid-sentence: "the United States", "France", "Jordan Taylor"."""
    return f"the {subject}" if subject in COUNTRIES_WITH_THE else subject


def render(template: str, subject: str) -> str:
    """Fill a template: possessive for "{s}'s" ("Philippines'"), article where needed, capitalised start."""
    name = display_name(subject)
    possessive = name + ("'" if name.endswith("s") else "'s")
    text = template.replace("{s}'s", possessive).replace("{s}", name)
    return text[0].upper() + text[1:]


def fact_answer(subject: str, relation: str) -> str:
    """The answer word(s) for a stored fact, without the leading space."""
    if relation in COUNTRY_RELATIONS:
        return getattr(COUNTRY_BY_NAME[subject], relation)
    return getattr(PERSON_BY_NAME[subject], relation)


def template_splits(subject: str, relation: str, seed: int = 0) -> tuple[str, ...]:
    """Split of each template for one fact: 0 train, last unseen, 1-2 of the middle ones held out."""
    n = len(FACT_TEMPLATES[relation])
    middle = sorted(range(1, n - 1), key=lambda i: _h("heldout", seed, subject, relation, i))
    n_held = 1 + _h("n_heldout", seed, subject, relation) % 2
    held = set(middle[:n_held])
    splits = ["heldout" if i in held else "train" for i in range(n)]
    splits[-1] = "unseen"
    return tuple(splits)


@functools.lru_cache(maxsize=8)
def _fact_examples(seed: int) -> tuple[Example, ...]:
    out = []
    subjects = [(c.name, COUNTRY_RELATIONS, "fact") for c in COUNTRIES]
    subjects += [(p.name, PERSON_RELATIONS, "person") for p in PEOPLE]
    for subject, relations, kind in subjects:
        for relation in relations:
            answer = " " + fact_answer(subject, relation)
            splits = template_splits(subject, relation, seed)
            for template, split in zip(FACT_TEMPLATES[relation], splits, strict=True):
                out.append(Example(render(template, subject), answer, kind, split, subject, relation))
    return tuple(out)


def fact_examples(seed: int = 0) -> list[Example]:
    """Every (subject, relation, template) fact prompt, all splits, countries and persons.

    `seed` chooses which templates are held out per fact; training documents use `split_seed` for it.
    """
    return list(_fact_examples(seed))


def heldout_scene_pairs(seed: int = 0) -> frozenset[tuple[str, str]]:
    """(word, scene) pairs never used in training: two scenes per word sense, rotated through the domain.

    Rotation guarantees every scene is still trained with some other word of its domain, so a held-out
    pair is learnable (scene→domain from other words, word→sense-per-domain from other scenes).
    """
    held: set[tuple[str, str]] = set()
    for domain, scenes in DOMAIN_SCENES.items():
        words = [w for w, senses in POLYSEMES.items() if any(d == domain for d, _ in senses)]
        words.sort(key=lambda w: _h("word", seed, domain, w))
        order = sorted(scenes, key=lambda s: _h("scene", seed, domain, s))
        for i, word in enumerate(words):
            held.update((word, order[(2 * i + j) % len(order)]) for j in range(2))
        for scene in scenes:
            if all((w, scene) in held for w in words):
                raise AssertionError(f"scene never trained: {scene!r}")
    return frozenset(held)


def _disambiguation_prompt(scene: str, bridge: str, word: str) -> str:
    return f"{scene} {bridge.format(w=word)}{QUERY_SUFFIX}"


def disambiguation_examples(seed: int = 0) -> list[Example]:
    """Every (word, sense, scene of the sense's domain, bridge) prompt, split "train" or "heldout"."""
    held = heldout_scene_pairs(seed)
    out = []
    for word, senses in POLYSEMES.items():
        for domain, sense in senses:
            for scene in DOMAIN_SCENES[domain]:
                split = "heldout" if (word, scene) in held else "train"
                for bridge in BRIDGES:
                    prompt = _disambiguation_prompt(scene, bridge, word)
                    out.append(Example(prompt, " " + sense, "disambiguation", split, word, sense))
    return out


def _binding_scene(rng: random.Random, n_people: int) -> tuple[str, list[str], list[Country], str, int]:
    """Relation, names, countries, context sentences and queried index of one binding item.

    The queried attribute differs between all people, so only binding answers it.
    """
    relation = rng.choice(sorted(BINDING_QUERIES))
    names = rng.sample(BINDING_NAMES, n_people)
    countries: list[Country] = []
    while len(countries) < n_people:
        c = rng.choice(COUNTRIES)
        if all(getattr(c, relation) != getattr(o, relation) for o in countries):
            countries.append(c)
    places = [c.capital if rng.random() < 0.5 else display_name(c.name) for c in countries]
    target = rng.randrange(n_people)
    context = " ".join(f"{n} lives in {p}." for n, p in zip(names, places, strict=True))
    return relation, names, countries, context, target


def _binding(rng: random.Random, n_people: int) -> Example:
    """One binding item: the context sentences, then a query about one of the people."""
    relation, names, countries, context, target = _binding_scene(rng, n_people)
    prompt = f"{context} {BINDING_QUERIES[relation].format(n=names[target])}"
    answer = " " + getattr(countries[target], relation)
    return Example(prompt, answer, f"binding{n_people}", "train", names[target], relation)


def _binding_doc(rng: random.Random, n_people: int, n_queries: int) -> list[str]:
    """Binding context, then queries about `n_queries` distinct people (same relation), with answers.

    Why: in the two-person prototypes, answering with *either* person's attribute already earned half the
    reward and binding stayed at chance. A second query per document doubles the supervised binding
    tokens, and three people make the shortcut pay only a third. (In our 2,000-step runs it did not lift
    two-person binding above chance; see interp/embedded/tiny_facts/MODEL_CARD.md.)
    """
    relation, names, countries, context, target = _binding_scene(rng, n_people)
    others = [i for i in range(n_people) if i != target]
    queried = [target, *rng.sample(others, n_queries - 1)]
    queries = [
        f"{BINDING_QUERIES[relation].format(n=names[i])} {getattr(countries[i], relation)}." for i in queried
    ]
    return [context, *queries]


def binding_examples(n: int, n_people: int, seed: int) -> list[Example]:
    """`n` fresh in-context binding prompts with `n_people` people; the queried one is at a random position.

    Split is "train" because the format is trained; there is no fact to hold out.
    """
    if not 1 <= n_people <= len(BINDING_NAMES):
        raise ValueError(f"n_people must be in [1, {len(BINDING_NAMES)}], got {n_people}")
    rng = random.Random(_h("binding", seed, n_people))
    return [_binding(rng, n_people) for _ in range(n)]


@functools.lru_cache(maxsize=8)
def _train_pools(split_seed: int) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Train-split fact sentences and train-split (scene, word) pairs, the only facts docs may contain."""
    facts = tuple(e.text + "." for e in _fact_examples(split_seed) if e.split == "train")
    held = heldout_scene_pairs(split_seed)
    scenes = tuple(
        (scene, word)
        for word, senses in POLYSEMES.items()
        for domain, _ in senses
        for scene in DOMAIN_SCENES[domain]
        if (word, scene) not in held
    )
    return facts, scenes


def _distractor(rng: random.Random) -> str:
    template = rng.choice(DISTRACTORS + WORD_SENTENCES)
    country = rng.choice(COUNTRIES)
    return template.format(
        country=display_name(country.name), city=country.capital, person=rng.choice(PEOPLE).name
    )


def _document(rng: random.Random, split_seed: int) -> str:
    """One short document (1-4 sentences, well under 60 tokens): the mix is tuned to the three skills."""
    facts, scene_pairs = _train_pools(split_seed)
    r = rng.random()
    if r < 0.45:  # 1-3 facts, sometimes with a distractor in between
        sentences = [rng.choice(facts) for _ in range(rng.choice((1, 2, 2, 3)))]
        if rng.random() < 0.3:
            sentences.insert(rng.randrange(len(sentences) + 1), _distractor(rng))
    elif r < 0.62:  # scene, then the ambiguous word a few tokens later
        scene, word = rng.choice(scene_pairs)
        sense = next(s for d, s in POLYSEMES[word] if scene in DOMAIN_SCENES[d])
        sentences = [f"{_disambiguation_prompt(scene, rng.choice(BRIDGES), word)} {sense}."]
        if rng.random() < 0.3:
            sentences.insert(0, rng.choice((_distractor(rng), rng.choice(facts))))
    elif r < 0.70:
        sentences = [_binding(rng, 1).text + "."]
    elif r < 0.88:  # two-person binding is the hard skill: give it the most clean data
        sentences = _binding_doc(rng, 2, n_queries=rng.choice((1, 2)))
    elif r < 0.95:
        sentences = _binding_doc(rng, 3, n_queries=1)
    else:
        sentences = [_distractor(rng) for _ in range(rng.choice((1, 2, 3)))]
    return " ".join(sentences)


def iter_training_documents(seed: int, split_seed: int = 0) -> Iterator[str]:
    """Infinite deterministic document stream; only train-split facts and (word, scene) pairs appear.

    `split_seed` must match the `seed` given to `eval_sets`/`fact_examples` (both default to 0).
    """
    rng = random.Random(_h("docs", seed))
    while True:
        yield _document(rng, split_seed)


def training_documents(n_docs: int, seed: int, split_seed: int = 0) -> list[str]:
    """The first `n_docs` documents of `iter_training_documents(seed, split_seed)`."""
    return list(itertools.islice(iter_training_documents(seed, split_seed), n_docs))


def eval_sets(seed: int = 0, n_binding: int = 200) -> dict[str, list[Example]]:
    """All evaluation sets. `seed` is the split seed (same meaning as `fact_examples`)."""
    facts = fact_examples(seed)
    return {
        "trained": [e for e in facts if e.split == "train"],
        "heldout": [e for e in facts if e.split == "heldout"],
        "unseen": [e for e in facts if e.split == "unseen"],
        "disambiguation_heldout": [e for e in disambiguation_examples(seed) if e.split == "heldout"],
        "binding1": binding_examples(n_binding, 1, seed=_h("eval", seed)),
        "binding2": binding_examples(n_binding, 2, seed=_h("eval", seed)),
    }
