"""tiny-facts-2 world and corpus: names whose single tokens say little, both languages, split hygiene, determinism."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from interp.embedded.tiny_facts_2 import corpus, world
from interp.embedded.tiny_facts_2.corpus import LANGS, eval_sets, fact_examples, training_documents


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return training_documents(4000, seed=0)


def test_same_seed_same_corpus(docs: list[str]) -> None:
    assert training_documents(200, seed=0) == docs[:200]
    assert training_documents(200, seed=1) != docs[:200]


@pytest.mark.parametrize("relation", ["birth_country", "job", "sport"])
def test_no_single_name_token_predicts_an_attribute(relation: str) -> None:
    # Each of the 8 values is carried by 8 people, and by at most 2 of any first or any last name's 8.
    by_first, by_last = defaultdict(Counter), defaultdict(Counter)
    for p in world.PEOPLE:
        first, last = p.name.split()
        by_first[first][getattr(p, relation)] += 1
        by_last[last][getattr(p, relation)] += 1
    for counts in (*by_first.values(), *by_last.values()):
        assert sum(counts.values()) == 8 and max(counts.values()) <= 2
    assert set(Counter(getattr(p, relation) for p in world.PEOPLE).values()) == {8}


def test_attribute_tables_are_not_modular_addition() -> None:
    # A relabelled cyclic square has value = f(row + column mod 8): every row a shift of the first.
    table = world.spread_table(8, 101)
    rows = [tuple(r) for r in table]
    assert all(max(Counter(r).values()) <= 2 for r in rows) and len(set(map(frozenset, rows))) > 1


def test_world_names_are_distinct_in_both_languages() -> None:
    assert len(world.PEOPLE) == 64 and len({p.zh_name for p in world.PEOPLE}) == 64
    assert len({c.zh_name for c in world.COUNTRIES}) == len(world.COUNTRIES)
    assert len({c.zh_capital for c in world.COUNTRIES}) == len(world.COUNTRIES)
    assert len({c.capital.split()[0] for c in world.COUNTRIES}) == len(world.COUNTRIES)
    senses = [s for senses in world.ZH_POLYSEMES.values() for _, s in senses]
    assert len(senses) == len(set(senses))


def test_eval_sets_cover_both_languages() -> None:
    sets = eval_sets()
    for lang in LANGS:
        for name in ("trained", "heldout", "unseen", "disambiguation_heldout", "binding1", "binding2"):
            assert sets[f"{name}_{lang}"], f"{name}_{lang}"
            assert {e.lang for e in sets[f"{name}_{lang}"]} == {lang}
    paris = [e for e in sets["trained_en"] if e.prompt == "The capital of France is"]
    bali = [e for e in sets["trained_zh"] if e.prompt == "法国的首都是"]
    assert paris[0].answer == " Paris" and bali[0].answer == "巴黎"
    apple = [e for e in sets["disambiguation_heldout_zh"] if e.subject == "苹果"]
    assert {e.answer for e in apple} == {"公司", "水果"}


def test_a_fact_is_the_same_in_both_languages() -> None:
    en = {(e.key, e.relation): e for e in fact_examples(lang="en") if corpus.is_template0(e)}
    zh = {(e.key, e.relation): e for e in fact_examples(lang="zh") if corpus.is_template0(e)}
    assert en.keys() == zh.keys()
    person = world.PERSON_BY_NAME["Jordan Carter"]
    assert (
        zh[("Jordan Carter", "birth_country")].answer == world.COUNTRY_BY_NAME[person.birth_country].zh_name
    )
    assert zh[("Jordan Carter", "birth_country")].prompt == "乔丹·卡特出生在"


def test_no_heldout_or_unseen_in_training_docs(docs: list[str]) -> None:
    text = "\n".join(docs)
    for e in fact_examples():
        if e.split != "train":
            assert e.text not in text, e.text
    for e in corpus.disambiguation_examples():
        if e.split == "heldout":
            assert e.prompt not in text, e.prompt


def test_filled_templates_never_contain_each_other() -> None:
    by_fact = defaultdict(list)
    for e in fact_examples():
        by_fact[(e.lang, e.key, e.relation)].append(e.text)
    for texts in by_fact.values():
        for a in texts:
            assert not any(a != b and a in b for b in texts), a


def test_documents_mix_languages_and_interjections(docs: list[str]) -> None:
    zh = sum(any("\u4e00" <= ch <= "\u9fff" for ch in d) for d in docs)
    assert 0.4 < zh / len(docs) < 0.65
    assert any(", an old friend of ours," in d for d in docs)
    assert any("，我们的老朋友，" in d for d in docs)
    assert any("lives in" in d and "speaks" in d for d in docs)


def test_every_template_word_is_seen_as_input(docs: list[str]) -> None:
    # tiny-facts' R6 lesson: a never-trained template is readable only if its words occur in training.
    words = set(" ".join(docs).replace(".", " ").replace(",", " ").split())
    for template in (t for ts in corpus.EN_TEMPLATES.values() for t in ts):
        for w in template.replace("{s}'s", "").replace("{s}", "").replace(",", " ").split():
            assert w in words or w.capitalize() in words or w.lower() in words, (template, w)
    chars = set("".join(docs))
    for template in (t for ts in corpus.ZH_TEMPLATES.values() for t in ts):
        assert set(template.replace("{s}", "")) <= chars, template
