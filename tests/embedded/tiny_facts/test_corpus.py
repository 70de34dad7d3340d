"""tiny-facts corpus: determinism, split hygiene (no eval leak into training docs), world consistency."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections import Counter

import pytest

from interp.embedded.tiny_facts import corpus, world
from interp.embedded.tiny_facts.corpus import (
    FACT_TEMPLATES,
    Example,
    binding_examples,
    disambiguation_examples,
    eval_sets,
    fact_examples,
    training_documents,
)

N_DOCS = 3000


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return training_documents(N_DOCS, seed=0)


def test_same_seed_same_corpus(docs: list[str]) -> None:
    assert training_documents(N_DOCS, seed=0) == docs
    assert eval_sets(seed=0, n_binding=50) == eval_sets(seed=0, n_binding=50)
    assert training_documents(200, seed=1) != docs[:200]
    assert eval_sets(seed=1, n_binding=50)["heldout"] != eval_sets(seed=0, n_binding=50)["heldout"]
    assert binding_examples(20, 2, seed=1) != binding_examples(20, 2, seed=2)


def test_deterministic_across_processes() -> None:
    """A fresh interpreter has a different PYTHONHASHSEED; output must not depend on it."""
    code = (
        "import hashlib; from interp.embedded.tiny_facts.corpus import training_documents, eval_sets;"
        "e = eval_sets(0, 20); print(hashlib.sha256(repr((training_documents(300, 5), e)).encode()).hexdigest())"
    )
    env_out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here = hashlib.sha256(repr((training_documents(300, 5), eval_sets(0, 20))).encode()).hexdigest()
    assert env_out.stdout.strip() == here


def test_eval_set_keys_and_canonical_fact() -> None:
    sets = eval_sets()
    assert set(sets) == {"trained", "heldout", "unseen", "disambiguation_heldout", "binding1", "binding2"}
    assert all(sets[k] for k in sets)
    france = Example("The capital of France is", " Paris", "fact", "train", "France", "capital")
    assert france in sets["trained"]
    assert {e.split for e in sets["trained"]} == {"train"}
    assert {e.split for e in sets["disambiguation_heldout"]} == {"heldout"}


def test_every_relation_has_all_splits() -> None:
    facts = fact_examples()
    for relation, templates in FACT_TEMPLATES.items():
        assert 5 <= len(templates) <= 8
        rel = [e for e in facts if e.relation == relation]
        assert {e.split for e in rel} == {"train", "heldout", "unseen"}, relation
        # template 0 always trained, last never trained, for every subject
        for e in rel:
            if e.prompt == corpus.render(templates[0], e.subject):
                assert e.split == "train"
            if e.prompt == corpus.render(templates[-1], e.subject):
                assert e.split == "unseen"
        # every held-out prompt's fact is trained through some other template
        trained = {(e.subject, e.answer) for e in rel if e.split == "train"}
        assert all((e.subject, e.answer) in trained for e in rel)
        # every middle template is trained for some subjects and held out for others
        for t in templates[1:-1]:
            splits = {e.split for e in rel if e.prompt == corpus.render(t, e.subject)}
            assert splits == {"train", "heldout"}, (relation, t)


def test_world_size_and_names() -> None:
    assert len(world.COUNTRIES) >= 100
    assert len({c.name for c in world.COUNTRIES}) == len(world.COUNTRIES)
    names = {c.name for c in world.COUNTRIES}
    assert {"United Kingdom", "United States", "South Africa", "New Zealand"} <= names
    capitals = {c.capital for c in world.COUNTRIES}
    assert {"Kuala Lumpur", "Buenos Aires", "New Delhi"} <= capitals
    people = {p.name for p in world.PEOPLE}
    assert 60 <= len(people) == len(world.PEOPLE) <= 100
    assert all(len(n.split()) == 2 and set(n.split()) <= set(world.PERSON_NAME_POOL) for n in people)
    reversed_pairs = [n for n in people if " ".join(n.split()[::-1]) in people]
    assert reversed_pairs
    a, b = world.PERSON_BY_NAME["Jordan Taylor"], world.PERSON_BY_NAME["Taylor Jordan"]
    assert a[1:] != b[1:]
    assert all(p.birth_country in world.COUNTRY_BY_NAME for p in world.PEOPLE)
    assert not set(world.BINDING_NAMES) & set(world.PERSON_NAME_POOL)


def test_filled_templates_never_contain_each_other() -> None:
    """A held-out sentence hidden inside a trained one would leak ("X plays golf" in "Then X plays golf")."""
    texts = [e.text for e in fact_examples()]
    big = "\n".join(texts)
    counts = Counter(texts)
    for t in set(texts):
        assert big.count(t) == counts[t], t


def test_no_heldout_or_unseen_in_training_docs(docs: list[str]) -> None:
    big = "\n".join(docs)
    sets = eval_sets()
    for key in ("heldout", "unseen"):
        for e in sets[key]:
            assert e.text not in big, e
    # and no trained fact is missing entirely: the docs do contain train sentences
    assert sum(e.text + "." in big for e in sets["trained"][:300]) > 100
    held = corpus.heldout_scene_pairs()
    for doc in docs:
        for word, scene in held:
            assert not (scene in doc and f" the {word}{corpus.QUERY_SUFFIX}" in doc), doc
    for e in sets["disambiguation_heldout"]:
        assert e.text not in big


def test_docs_are_short_sentences(docs: list[str]) -> None:
    for doc in docs:
        assert doc.endswith(".") and "  " not in doc
        assert 1 <= len(re.findall(r"\.(?: |$)", doc)) <= 4, doc
        assert len(doc) < 240
    kinds = Counter(
        "binding" if " lives in " in d else "disamb" if corpus.QUERY_SUFFIX in d else "other" for d in docs
    )
    assert kinds["binding"] > N_DOCS * 0.25 and kinds["disamb"] > N_DOCS * 0.1


def test_disambiguation_splits() -> None:
    examples = disambiguation_examples()
    for word, senses in world.POLYSEMES.items():
        for _, sense in senses:
            splits = Counter(e.split for e in examples if e.subject == word and e.relation == sense)
            assert splits["heldout"] > 0 and splits["train"] > 0, (word, sense)
    # every held-out scene is trained with another word of the same domain (learnable)
    held = corpus.heldout_scene_pairs()
    for word, scene in held:
        domain = next(d for d, s in world.DOMAIN_SCENES.items() if scene in s)
        others = [w for w, ss in world.POLYSEMES.items() if any(d == domain for d, _ in ss) and w != word]
        assert any((w, scene) not in held for w in others), (word, scene)
    # the answer follows the scene's domain
    for e in examples:
        domain = next(d for d, s in world.DOMAIN_SCENES.items() if e.prompt.startswith(s))
        assert (domain, e.answer[1:]) in world.POLYSEMES[e.subject]
        assert e.prompt.endswith(f"the {e.subject}, meaning the")


def _place_country(place: str) -> world.Country:
    place = place.removeprefix("the ")
    return world.COUNTRY_BY_NAME.get(place) or world.COUNTRY_BY_CAPITAL[place]


@pytest.mark.parametrize("n_people", [1, 2, 3])
def test_binding_answers_match_world(n_people: int) -> None:
    examples = binding_examples(300, n_people, seed=7)
    positions = Counter()
    for e in examples:
        assert e.kind == f"binding{n_people}"
        lived = dict(re.findall(r"(\w+) lives in ([^.]+)\.", e.prompt))
        assert len(lived) == n_people and e.subject in lived
        attr = e.relation
        assert getattr(_place_country(lived[e.subject]), attr) == e.answer[1:], e
        others = [getattr(_place_country(p), attr) for n, p in lived.items() if n != e.subject]
        assert e.answer[1:] not in others
        positions[list(lived).index(e.subject)] += 1
    assert len(positions) == n_people  # the queried person is not always in the same slot
    docs = [d for d in training_documents(500, seed=3) if " lives in " in d]
    for doc in docs:
        lived = dict(re.findall(r"(\w+) lives in ([^.]+)\.", doc))
        name, verb, answer = re.search(r"(\w+) (speaks|pays with the) (\w+)\.$", doc).groups()
        attr = "language" if verb == "speaks" else "currency"
        assert getattr(_place_country(lived[name]), attr) == answer


def test_every_template_word_is_seen_as_input(docs: list[str]) -> None:
    """A never-trained template must still be made of words the model has read somewhere."""
    import re

    from interp.embedded.tiny_facts.corpus import FACT_TEMPLATES

    seen = {w for d in docs for w in re.findall(r"[a-z]+", d.lower())}
    for relation, templates in FACT_TEMPLATES.items():
        for t in templates:
            missing = set(re.findall(r"[a-z]+", t.replace("{s}", "").lower())) - seen
            assert not missing, f"{relation} template {t!r}: {sorted(missing)} never appear in training docs"
