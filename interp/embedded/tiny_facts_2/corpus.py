"""Templates, the deterministic bilingual document stream and the evaluation sets of tiny-facts-2.

Same contract as tiny-facts (`interp.embedded.tiny_facts.corpus`): every eval prompt carries a split
(``train``: the sentence occurs in training; ``heldout``: the fact and the template are trained, never
together; ``unseen``: the template is never trained), and each `Example` also says its language
("en" or "zh"). Both languages state the same facts about the same entities.

What is new, and why (the model card has the measurements):

* Person names are cells of a 8 x 8 grid with Latin-square attributes (`world.py`), so no single name
  token predicts anything; the pair must be assembled before it can be looked up.
* Person facts are often asked after intervening text ("Jordan Carter, an old friend of ours, was born
  in"), so fetching the name's tokens from the question's position is less useful than enriching the
  subject where it stands.
* Two-person binding gets a one-hop curriculum: besides "Ana speaks" (place → language, two hops), the
  documents ask "Ana lives in" (a copy of the bound place), which teaches the name match by itself.
"""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass

from interp.embedded.tiny_facts import corpus as tf
from interp.embedded.tiny_facts import world as tf_world
from interp.embedded.tiny_facts_2.world import (
    BINDING_NAMES,
    COUNTRIES,
    COUNTRIES_WITH_THE,
    COUNTRY_BY_NAME,
    PEOPLE,
    PERSON_BY_NAME,
    ZH_BINDING_NAMES,
    ZH_DOMAIN_SCENES,
    ZH_POLYSEMES,
    Country,
)

_h = tf._h  # stable SHA-256 hash, shared with tiny-facts
LANGS: tuple[str, ...] = ("en", "zh")

# Template 0 is always trained, the last is never trained ("unseen": a new arrangement of trained
# words, see tiny-facts' R6/R7), 1-2 of the middle ones are held out per fact.
EN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "capital": (
        "The capital of {s} is",
        "{s}'s capital is",
        "{s}'s capital city is",
        "The capital city of {s} is",
        "The seat of government of {s} is in",
        "In {s}, the capital is",
        "In {s}, the capital city is",
    ),
    "language": (
        "The official language of {s} is",
        "{s}'s official language is",
        "People in {s} speak",
        "In {s}, people speak",
        "The main language spoken in {s} is",
        "{s}'s main language is",
        "In {s}, the official language is",
    ),
    "continent": (
        "{s} is located in",
        "{s} is a country in",
        "{s} is in",
        "The continent of {s} is",
        "{s} is found on the continent of",
        "{s} belongs to the continent of",
        "{s} is a country located in",
    ),
    "birth_country": (
        "{s} was born in",
        "The birthplace of {s} is",
        "{s} is originally from",
        "{s}'s home country is",
        "The country where {s} was born is",
        "{s}'s birthplace is",
    ),
    "job": (
        "{s} works as a",
        "By profession, {s} is a",
        "{s} earns a living as a",
        "{s} is employed as a",
        "{s} has a job as a",
        "{s} works by profession as a",
    ),
    "sport": (
        "{s} plays",
        "{s}'s favorite sport is",
        "The sport that {s} plays is",
        "{s} spends weekends playing",
        "The favorite sport of {s} is",
        "The sport {s} plays is",
    ),
}
ZH_TEMPLATES: dict[str, tuple[str, ...]] = {
    "capital": (
        "{s}的首都是",
        "{s}的首都叫",
        "{s}的首都城市是",
        "{s}的政府所在地是",
        "说到{s}，它的首都是",
        "在{s}，首都是",
        "在{s}，首都城市是",
    ),
    "language": (
        "{s}的官方语言是",
        "{s}的人说",
        "在{s}，人们说",
        "{s}的主要语言是",
        "{s}通用的语言是",
        "在{s}，人们讲的主要语言是",
        "在{s}，官方语言是",
    ),
    "continent": (
        "{s}位于",
        "{s}是一个国家，位于",
        "{s}在",
        "{s}所在的大洲是",
        "{s}地处",
        "{s}属于",
        "{s}是一个位于",
    ),
    "birth_country": (
        "{s}出生在",
        "{s}的出生地是",
        "{s}来自",
        "{s}的祖国是",
        "{s}出生的国家是",
        # Never trained: "的", "出生" and "国家" rearranged from the trained "{s}的出生地是" and "{s}出生的国家是",
        # as every other never-trained template rearranges its relation's trained words. (It was "{s}的家乡是";
        # 家乡, "hometown", is in no trained template of the relation, and the model scored 0.08 on it.)
        "{s}的出生国家是",
    ),
    "job": (
        "{s}的职业是",
        "{s}是一名",
        "{s}的工作是",
        "{s}靠当",
        "{s}受雇当",
        "{s}的工作是一名",
    ),
    "sport": (
        "{s}最喜欢的运动是",
        "{s}喜欢的运动是",
        "{s}周末常玩的运动是",
        "{s}擅长的运动是",
        "{s}热爱的运动是",
        "{s}周末喜欢的运动是",
    ),
}
TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {"en": EN_TEMPLATES, "zh": ZH_TEMPLATES}
FACT_TEMPLATES = EN_TEMPLATES  # the experiments' relation list (both languages have the same relations)
COUNTRY_RELATIONS: tuple[str, ...] = ("capital", "language", "continent")
PERSON_RELATIONS: tuple[str, ...] = ("birth_country", "job", "sport")

# Inserted after a person subject in training documents; see the module docstring.
INTERJECTIONS: dict[str, tuple[str, ...]] = {
    "en": (
        ", who moved here last year,",
        ", an old friend of ours,",
        ", as far as we know,",
        ", the one we met in the park,",
        ", who lives next door,",
        ", according to the news,",
    ),
    "zh": (
        "，去年搬来这里，",
        "，我们的老朋友，",
        "，据我们所知，",
        "，就是我们在公园遇到的那位，",
        "，住在隔壁，",
        "，据新闻报道，",
    ),
}

ZH_BRIDGES: tuple[str, ...] = (
    "后来她提到了{w}",
    "然后他指了指{w}",
    "过了一会儿他们聊起了{w}",
    "大家一直看着{w}",
)
ZH_QUERY_SUFFIX = "，指的是"

BINDING = {
    "en": {
        "names": BINDING_NAMES,
        "lives": "{n} lives in {p}.",
        "query": "{n} speaks",
        "copy": "{n} lives in",
    },
    "zh": {"names": ZH_BINDING_NAMES, "lives": "{n}住在{p}。", "query": "{n}说", "copy": "{n}住在"},
}

DISTRACTORS: dict[str, tuple[str, ...]] = {
    "en": (
        "My friend visited {country} last summer.",
        "We watched a film about {country}.",
        "The flight to {city} was delayed.",
        "Our neighbor just came back from {city}.",
        "{person} bought a new bike.",
        "{person} called an old friend.",
        "{person} read a long book about {country}.",
        "The weather was cold.",
        "It rained all day.",
        "The train was late again.",
        "The meeting ended early.",
        "She opened the window.",
    ),
    "zh": (
        "我的朋友去年夏天去了{country}。",
        "我们看了一部关于{country}的电影。",
        "飞往{city}的航班晚点了。",
        "邻居刚从{city}回来。",
        "{person}买了一本新书。",
        "{person}给老朋友打了电话。",
        "{person}读了一本关于{country}的书。",
        "天气很冷。",
        "下了一整天的雨。",
        "火车又晚点了。",
        "会议提前结束了。",
        "她打开了窗户。",
    ),
}
# Every word of every template, unseen ones included, in everyday sentences outside any fact frame
# (tiny-facts' R6 lesson: a word never seen as input keeps a junk embedding).
WORD_SENTENCES: dict[str, tuple[str, ...]] = {
    "en": tf.WORD_SENTENCES
    + (
        "The city was quiet at night.",
        "The house is located near the river.",
        "Her birthplace was a small town.",
        "He works late by profession and by choice.",
        "The sport was new to them.",
        "The official visit ended early.",
    ),
    "zh": (
        "这座城市很安静。",
        "首都城市的夜晚很热闹。",
        "官方的消息来得很晚。",
        "他的家乡有一条小河。",
        "这所学校位于山脚下。",
        "她的工作很忙。",
        "他当了很多年的老师。",
        "周末喜欢的活动是散步。",
        "这个国家很大。",
        "人们讲的故事很有趣。",
        "他们受雇修路。",
        "大家周末常去公园。",
    ),
}


@dataclass(frozen=True)
class Example(tf.Example):
    """tiny-facts' `Example` plus its language and the entity's key.

    `subject` is the subject as written in the prompt ("United States", "美国", "乔丹·卡特"), `key` the
    entity's English key in `world.py`, the same in both languages ("" for binding and disambiguation).
    `answer` has a leading space in English and none in Chinese.
    """

    lang: str = "en"
    key: str = ""


def display_name(subject: str, lang: str = "en") -> str:
    """How an (English-keyed) subject reads mid-sentence in `lang`: "the United States", "美国", "乔丹·卡特"."""
    if lang == "zh":
        c = COUNTRY_BY_NAME.get(subject)
        return c.zh_name if c else PERSON_BY_NAME[subject].zh_name
    return f"the {subject}" if subject in COUNTRIES_WITH_THE else subject


def render(template: str, subject: str, lang: str = "en") -> str:
    """Fill a template; English gets possessives and a capitalised start as in tiny-facts."""
    name = display_name(subject, lang)
    if lang == "zh":
        return template.replace("{s}", name)
    possessive = name + ("'" if name.endswith("s") else "'s")
    text = template.replace("{s}'s", possessive).replace("{s}", name)
    return text[0].upper() + text[1:]


def _space(lang: str) -> str:
    return " " if lang == "en" else ""


def fact_answer(subject: str, relation: str, lang: str = "en") -> str:
    """The answer word(s) of a stored fact in `lang`, without a leading space."""
    if relation in COUNTRY_RELATIONS:
        c = COUNTRY_BY_NAME[subject]
        return getattr(c, relation if lang == "en" else f"zh_{relation}")
    p = PERSON_BY_NAME[subject]
    if relation == "birth_country":
        return p.birth_country if lang == "en" else p.zh_birth_country
    return getattr(p, relation if lang == "en" else f"zh_{relation}")


def template_splits(subject: str, relation: str, lang: str, seed: int = 0) -> tuple[str, ...]:
    n = len(TEMPLATES[lang][relation])
    middle = sorted(range(1, n - 1), key=lambda i: _h("heldout2", seed, lang, subject, relation, i))
    held = set(middle[: 1 + _h("n_heldout2", seed, lang, subject, relation) % 2])
    splits = ["heldout" if i in held else "train" for i in range(n)]
    splits[-1] = "unseen"
    return tuple(splits)


@functools.lru_cache(maxsize=8)
def _fact_examples(seed: int) -> tuple[Example, ...]:
    out = []
    subjects = [(c.name, COUNTRY_RELATIONS, "fact") for c in COUNTRIES]
    subjects += [(p.name, PERSON_RELATIONS, "person") for p in PEOPLE]
    for lang in LANGS:
        for subject, relations, kind in subjects:
            for relation in relations:
                answer = _space(lang) + fact_answer(subject, relation, lang)
                splits = template_splits(subject, relation, lang, seed)
                for template, split in zip(TEMPLATES[lang][relation], splits, strict=True):
                    prompt = render(template, subject, lang)
                    name = subject if lang == "en" else display_name(subject, lang)
                    out.append(Example(prompt, answer, kind, split, name, relation, lang, subject))
    return tuple(out)


def is_template0(e: Example) -> bool:
    """Whether a fact example uses its relation's first (always trained) template."""
    return e.prompt == render(TEMPLATES[e.lang][e.relation][0], e.key, e.lang)


def fact_examples(seed: int = 0, lang: str | None = None) -> list[Example]:
    """Every (language, subject, relation, template) fact prompt, all splits; `lang` filters."""
    return [e for e in _fact_examples(seed) if lang is None or e.lang == lang]


def _domains(lang: str) -> tuple[dict[str, tuple[str, ...]], dict]:
    if lang == "en":
        return tf_world.DOMAIN_SCENES, tf_world.POLYSEMES
    return ZH_DOMAIN_SCENES, ZH_POLYSEMES


POLYSEMES = {**tf_world.POLYSEMES, **ZH_POLYSEMES}  # word -> senses, both languages (words are disjoint)


@functools.lru_cache(maxsize=8)
def heldout_scene_pairs(seed: int = 0, lang: str = "en") -> frozenset[tuple[str, str]]:
    """tiny-facts' rotation of held-out (word, scene) pairs, per language."""
    if lang == "en":
        return tf.heldout_scene_pairs(seed)
    scenes_by_domain, polysemes = _domains(lang)
    held: set[tuple[str, str]] = set()
    for domain, scenes in scenes_by_domain.items():
        words = sorted(
            (w for w, s in polysemes.items() if any(d == domain for d, _ in s)),
            key=lambda w: _h("w", seed, w),
        )
        order = sorted(scenes, key=lambda s: _h("scene", seed, domain, s))
        for i, word in enumerate(words):
            held.update((word, order[(2 * i + j) % len(order)]) for j in range(2))
        if any(all((w, s) in held for w in words) for s in scenes):
            raise AssertionError(f"a {domain} scene is never trained")
    return frozenset(held)


def disambiguation_prompt(scene: str, bridge: str, word: str, lang: str) -> str:
    if lang == "en":
        return tf._disambiguation_prompt(scene, bridge, word)
    return f"{scene}{bridge.format(w=word)}{ZH_QUERY_SUFFIX}"


def disambiguation_examples(seed: int = 0, lang: str | None = None) -> list[Example]:
    """Every (word, sense, scene, bridge) prompt of each language, split "train" or "heldout"."""
    out = []
    for lg in LANGS if lang is None else (lang,):
        scenes_by_domain, polysemes = _domains(lg)
        held = heldout_scene_pairs(seed, lg)
        bridges = tf.BRIDGES if lg == "en" else ZH_BRIDGES
        for word, senses in polysemes.items():
            for domain, sense in senses:
                for scene in scenes_by_domain[domain]:
                    split = "heldout" if (word, scene) in held else "train"
                    for bridge in bridges:
                        prompt = disambiguation_prompt(scene, bridge, word, lg)
                        out.append(
                            Example(prompt, _space(lg) + sense, "disambiguation", split, word, sense, lg)
                        )
    return out


def _place(c: Country, lang: str, rng: random.Random) -> str:
    if lang == "en":
        return c.capital if rng.random() < 0.5 else display_name(c.name)
    return c.zh_capital if rng.random() < 0.5 else c.zh_name


def _binding_scene(
    rng: random.Random, n_people: int, lang: str
) -> tuple[list[str], list[Country], list[str]]:
    """Names, countries (pairwise different languages) and place strings of one binding item."""
    names = rng.sample(BINDING[lang]["names"], n_people)
    countries: list[Country] = []
    while len(countries) < n_people:
        c = rng.choice(COUNTRIES)
        if all(c.language != o.language for o in countries):
            countries.append(c)
    return names, countries, [_place(c, lang, rng) for c in countries]


def _language(c: Country, lang: str) -> str:
    return c.language if lang == "en" else c.zh_language


def _binding(rng: random.Random, n_people: int, lang: str) -> Example:
    names, countries, places = _binding_scene(rng, n_people, lang)
    b, target = BINDING[lang], rng.randrange(n_people)
    context = _space(lang).join(b["lives"].format(n=n, p=p) for n, p in zip(names, places, strict=True))
    prompt = context + _space(lang) + b["query"].format(n=names[target])
    answer = _space(lang) + _language(countries[target], lang)
    return Example(prompt, answer, f"binding{n_people}", "train", names[target], "language", lang)


def _binding_doc(rng: random.Random, n_people: int, n_queries: int, lang: str, copy: float) -> str:
    """Binding context, then `n_queries` queries on distinct people; a `copy` share ask for the place."""
    names, countries, places = _binding_scene(rng, n_people, lang)
    b, sp = BINDING[lang], _space(lang)
    end = "." if lang == "en" else "。"
    out = [b["lives"].format(n=n, p=p) for n, p in zip(names, places, strict=True)]
    for i in rng.sample(range(n_people), n_queries):
        if rng.random() < copy:
            out.append(b["copy"].format(n=names[i]) + sp + places[i] + end)
        else:
            out.append(b["query"].format(n=names[i]) + sp + _language(countries[i], lang) + end)
    return sp.join(out)


def binding_examples(n: int, n_people: int, seed: int, lang: str = "en") -> list[Example]:
    """`n` fresh binding prompts with `n_people` people (split "train": the format is trained)."""
    rng = random.Random(_h("binding2", seed, n_people, lang))
    return [_binding(rng, n_people, lang) for _ in range(n)]


@dataclass(frozen=True)
class Mix:
    """Document mix of the training stream (shares of documents; the rest are distractors)."""

    facts: float = 0.45
    disambiguation: float = 0.15
    binding1: float = 0.06
    binding2: float = 0.18
    binding3: float = 0.06
    parallel: float = 0.04  # the same fact in both languages, side by side
    interject: float = 0.3  # share of person-fact sentences with an interjection after the subject
    copy: float = 0.5  # share of binding queries that ask for the place itself (one hop)


@functools.lru_cache(maxsize=8)
def _train_pools(split_seed: int) -> dict:
    """Per language: train-split fact examples and trained (scene, word) pairs."""
    pools = {}
    for lang in LANGS:
        facts = tuple(e for e in fact_examples(split_seed, lang) if e.split == "train")
        scenes_by_domain, polysemes = _domains(lang)
        held = heldout_scene_pairs(split_seed, lang)
        scenes = tuple(
            (scene, word, sense)
            for word, senses in polysemes.items()
            for domain, sense in senses
            for scene in scenes_by_domain[domain]
            if (word, scene) not in held
        )
        pools[lang] = (facts, scenes)
    return pools


def _end(lang: str) -> str:
    return "." if lang == "en" else "。"


def _interjected(e: Example, rng: random.Random) -> str:
    """The sentence of a person fact, with an interjection after the subject when the template allows."""
    name = display_name(e.key, e.lang)
    if e.prompt.startswith(name) and e.prompt[len(name) : len(name) + 1] not in ("'", "的"):
        rest = e.prompt[len(name) :].lstrip()
        return name + rng.choice(INTERJECTIONS[e.lang]) + _space(e.lang) + rest + e.answer
    return e.text


def _fact_sentence(e: Example, rng: random.Random, mix: Mix) -> str:
    if e.kind == "person" and rng.random() < mix.interject:
        return _interjected(e, rng) + _end(e.lang)
    return e.text + _end(e.lang)


def _distractor(rng: random.Random, lang: str) -> str:
    template = rng.choice(DISTRACTORS[lang] + WORD_SENTENCES[lang])
    c, p = rng.choice(COUNTRIES), rng.choice(PEOPLE)
    if lang == "en":
        return template.format(country=display_name(c.name), city=c.capital, person=p.name)
    return template.format(country=c.zh_name, city=c.zh_capital, person=p.zh_name)


def _document(rng: random.Random, split_seed: int, mix: Mix) -> str:
    pools = _train_pools(split_seed)
    lang = rng.choice(LANGS)
    facts, scene_pairs = pools[lang]
    sp = _space(lang)
    r = rng.random()
    edges = list(
        itertools.accumulate(
            (mix.facts, mix.disambiguation, mix.binding1, mix.binding2, mix.binding3, mix.parallel)
        )
    )
    if r < edges[0]:
        sentences = [_fact_sentence(rng.choice(facts), rng, mix) for _ in range(rng.choice((1, 2, 2, 3)))]
        if rng.random() < 0.3:
            sentences.insert(rng.randrange(len(sentences) + 1), _distractor(rng, lang))
    elif r < edges[1]:
        scene, word, sense = rng.choice(scene_pairs)
        bridges = tf.BRIDGES if lang == "en" else ZH_BRIDGES
        sentences = [disambiguation_prompt(scene, rng.choice(bridges), word, lang) + sp + sense + _end(lang)]
        if rng.random() < 0.3:
            sentences.insert(0, _distractor(rng, lang))
    elif r < edges[2]:
        sentences = [_binding_doc(rng, 1, 1, lang, mix.copy)]
    elif r < edges[3]:
        sentences = [_binding_doc(rng, 2, rng.choice((1, 2)), lang, mix.copy)]
    elif r < edges[4]:
        sentences = [_binding_doc(rng, 3, rng.choice((1, 2)), lang, mix.copy)]
    elif r < edges[5]:  # one trained fact stated in both languages, in random order
        e = rng.choice(facts)
        twin = _twin(e, split_seed)
        pair = [e.text + _end(e.lang)] + ([twin.text + _end(twin.lang)] if twin else [])
        rng.shuffle(pair)
        return " ".join(pair)
    else:
        sentences = [_distractor(rng, lang) for _ in range(rng.choice((1, 2, 3)))]
    return sp.join(sentences)


@functools.lru_cache(maxsize=8)
def _twins(split_seed: int) -> dict[tuple[str, str], Example]:
    """(subject, relation) -> the template-0 example in each language, for parallel documents."""
    out = {}
    for e in _fact_examples(split_seed):
        if is_template0(e):
            out[(e.lang, e.key, e.relation)] = e
    return out


def _twin(e: Example, split_seed: int) -> Example | None:
    return _twins(split_seed).get(("zh" if e.lang == "en" else "en", e.key, e.relation))


def iter_training_documents(seed: int, split_seed: int = 0, mix: Mix = Mix()) -> Iterator[str]:
    """Infinite deterministic document stream; only train-split facts and (word, scene) pairs appear."""
    rng = random.Random(_h("docs2", seed))
    while True:
        yield _document(rng, split_seed, mix)


def training_documents(n_docs: int, seed: int, split_seed: int = 0, mix: Mix = Mix()) -> list[str]:
    return list(itertools.islice(iter_training_documents(seed, split_seed, mix), n_docs))


def eval_sets(seed: int = 0, n_binding: int = 200) -> dict[str, list[Example]]:
    """Every evaluation set, per language: "trained_en", ..., "binding2_zh"."""
    out: dict[str, list[Example]] = {}
    for lang in LANGS:
        facts = fact_examples(seed, lang)
        out[f"trained_{lang}"] = [e for e in facts if e.split == "train"]
        out[f"heldout_{lang}"] = [e for e in facts if e.split == "heldout"]
        out[f"unseen_{lang}"] = [e for e in facts if e.split == "unseen"]
        dis = disambiguation_examples(seed, lang)
        out[f"disambiguation_heldout_{lang}"] = [e for e in dis if e.split == "heldout"]
        out[f"binding1_{lang}"] = binding_examples(n_binding, 1, _h("eval", seed), lang)
        out[f"binding2_{lang}"] = binding_examples(n_binding, 2, _h("eval", seed), lang)
    return out
