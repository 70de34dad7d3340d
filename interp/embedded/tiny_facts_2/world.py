"""The bilingual (English + Chinese) knowledge base behind the tiny-facts-2 corpus.

Why a second world: in tiny-facts every person's surname narrowed the answer, so a per-token lookup in
MLP0 was enough and the facts never moved to a middle layer. Here a person is a cell of a 8 x 8 grid
of first and last names, and each person attribute is a seeded table over that grid in which every first
name and every last name carries each of the 8 values of a relation at most twice (`spread_table`). A
single name token therefore narrows an attribute little; only the assembled pair decides it, so the
subject must be built by attention before an MLP can look it up.

Every entity has an English and a Chinese name (hand-written; no dataset). Chinese person names are the
usual transliterations of the English ones, joined by the middle dot "·", so the same 64 people exist
in both languages and cross-lingual recall can be compared fact by fact.

Nothing here is random at import time except the attribute tables, which come from a fixed seed and are
checked by the tests.
"""

from __future__ import annotations

import random
from typing import NamedTuple


class Country(NamedTuple):
    name: str
    capital: str
    language: str
    continent: str
    zh_name: str
    zh_capital: str
    zh_language: str
    zh_continent: str


class Person(NamedTuple):
    """One cell of the name grid; `name` is "First Last", `zh_name` "名·姓" in the same order."""

    name: str
    birth_country: str  # English country name (a key of COUNTRY_BY_NAME)
    job: str
    sport: str
    zh_name: str
    zh_birth_country: str
    zh_job: str
    zh_sport: str


# First words of the English capitals are unique, and so are the Chinese capitals as whole words, because
# an eval scores only the first token of the answer.
COUNTRIES: tuple[Country, ...] = (
    Country("France", "Paris", "French", "Europe", "法国", "巴黎", "法语", "欧洲"),
    Country("Germany", "Berlin", "German", "Europe", "德国", "柏林", "德语", "欧洲"),
    Country("Italy", "Rome", "Italian", "Europe", "意大利", "罗马", "意大利语", "欧洲"),
    Country("Spain", "Madrid", "Spanish", "Europe", "西班牙", "马德里", "西班牙语", "欧洲"),
    Country("Portugal", "Lisbon", "Portuguese", "Europe", "葡萄牙", "里斯本", "葡萄牙语", "欧洲"),
    Country("United Kingdom", "London", "English", "Europe", "英国", "伦敦", "英语", "欧洲"),
    Country("Netherlands", "Amsterdam", "Dutch", "Europe", "荷兰", "阿姆斯特丹", "荷兰语", "欧洲"),
    Country("Austria", "Vienna", "German", "Europe", "奥地利", "维也纳", "德语", "欧洲"),
    Country("Sweden", "Stockholm", "Swedish", "Europe", "瑞典", "斯德哥尔摩", "瑞典语", "欧洲"),
    Country("Norway", "Oslo", "Norwegian", "Europe", "挪威", "奥斯陆", "挪威语", "欧洲"),
    Country("Poland", "Warsaw", "Polish", "Europe", "波兰", "华沙", "波兰语", "欧洲"),
    Country("Greece", "Athens", "Greek", "Europe", "希腊", "雅典", "希腊语", "欧洲"),
    Country("Russia", "Moscow", "Russian", "Europe", "俄罗斯", "莫斯科", "俄语", "欧洲"),
    Country("Finland", "Helsinki", "Finnish", "Europe", "芬兰", "赫尔辛基", "芬兰语", "欧洲"),
    Country("Hungary", "Budapest", "Hungarian", "Europe", "匈牙利", "布达佩斯", "匈牙利语", "欧洲"),
    Country("Ireland", "Dublin", "English", "Europe", "爱尔兰", "都柏林", "英语", "欧洲"),
    Country("China", "Beijing", "Chinese", "Asia", "中国", "北京", "汉语", "亚洲"),
    Country("Japan", "Tokyo", "Japanese", "Asia", "日本", "东京", "日语", "亚洲"),
    Country("South Korea", "Seoul", "Korean", "Asia", "韩国", "首尔", "韩语", "亚洲"),
    Country("India", "New Delhi", "Hindi", "Asia", "印度", "新德里", "印地语", "亚洲"),
    Country("Thailand", "Bangkok", "Thai", "Asia", "泰国", "曼谷", "泰语", "亚洲"),
    Country("Vietnam", "Hanoi", "Vietnamese", "Asia", "越南", "河内", "越南语", "亚洲"),
    Country("Indonesia", "Jakarta", "Indonesian", "Asia", "印度尼西亚", "雅加达", "印尼语", "亚洲"),
    Country("Turkey", "Ankara", "Turkish", "Asia", "土耳其", "安卡拉", "土耳其语", "亚洲"),
    Country("Iran", "Tehran", "Persian", "Asia", "伊朗", "德黑兰", "波斯语", "亚洲"),
    Country("Saudi Arabia", "Riyadh", "Arabic", "Asia", "沙特阿拉伯", "利雅得", "阿拉伯语", "亚洲"),
    Country("Egypt", "Cairo", "Arabic", "Africa", "埃及", "开罗", "阿拉伯语", "非洲"),
    Country("Morocco", "Rabat", "Arabic", "Africa", "摩洛哥", "拉巴特", "阿拉伯语", "非洲"),
    Country("Kenya", "Nairobi", "Swahili", "Africa", "肯尼亚", "内罗毕", "斯瓦希里语", "非洲"),
    Country("Nigeria", "Abuja", "English", "Africa", "尼日利亚", "阿布贾", "英语", "非洲"),
    Country("Ethiopia", "Addis Ababa", "Amharic", "Africa", "埃塞俄比亚", "亚的斯亚贝巴", "阿姆哈拉语", "非洲"),
    Country("South Africa", "Pretoria", "English", "Africa", "南非", "比勒陀利亚", "英语", "非洲"),
    Country("United States", "Washington", "English", "North America", "美国", "华盛顿", "英语", "北美洲"),
    Country("Canada", "Ottawa", "English", "North America", "加拿大", "渥太华", "英语", "北美洲"),
    Country("Mexico", "Mexico City", "Spanish", "North America", "墨西哥", "墨西哥城", "西班牙语", "北美洲"),
    Country("Cuba", "Havana", "Spanish", "North America", "古巴", "哈瓦那", "西班牙语", "北美洲"),
    Country("Brazil", "Brasilia", "Portuguese", "South America", "巴西", "巴西利亚", "葡萄牙语", "南美洲"),
    Country("Argentina", "Buenos Aires", "Spanish", "South America", "阿根廷", "布宜诺斯艾利斯", "西班牙语", "南美洲"),
    Country("Chile", "Santiago", "Spanish", "South America", "智利", "圣地亚哥", "西班牙语", "南美洲"),
    Country("Peru", "Lima", "Spanish", "South America", "秘鲁", "利马", "西班牙语", "南美洲"),
    Country("Colombia", "Bogota", "Spanish", "South America", "哥伦比亚", "波哥大", "西班牙语", "南美洲"),
    Country("Australia", "Canberra", "English", "Oceania", "澳大利亚", "堪培拉", "英语", "大洋洲"),
    Country("New Zealand", "Wellington", "English", "Oceania", "新西兰", "惠灵顿", "英语", "大洋洲"),
)  # fmt: skip

# Country names that read as "the X" inside an English sentence.
COUNTRIES_WITH_THE: frozenset[str] = frozenset({"United Kingdom", "United States", "Netherlands"})

COUNTRY_BY_NAME: dict[str, Country] = {c.name: c for c in COUNTRIES}

# The grid. English first and last names are disjoint pools; (English, Chinese transliteration).
FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("Jordan", "乔丹"), ("Taylor", "泰勒"), ("Morgan", "摩根"), ("Riley", "莱利"), ("Casey", "凯西"),
    ("Avery", "埃弗里"), ("Parker", "帕克"), ("Quinn", "奎因"),
)  # fmt: skip
LAST_NAMES: tuple[tuple[str, str], ...] = (
    ("Carter", "卡特"), ("Spencer", "斯宾塞"), ("Hunter", "亨特"), ("Bailey", "贝利"), ("Nolan", "诺兰"),
    ("Grant", "格兰特"), ("Harper", "哈珀"), ("Ellis", "埃利斯"),
)  # fmt: skip

# Eight values per person relation, one per table symbol. Birth countries are countries of the
# world (their capitals etc. are facts too) with distinct first words.
BIRTH_COUNTRIES: tuple[str, ...] = (
    "France", "Germany", "Italy", "Spain", "Japan", "China", "Brazil", "Canada",
)  # fmt: skip
JOBS: tuple[tuple[str, str], ...] = (
    ("doctor", "医生"), ("teacher", "教师"), ("lawyer", "律师"), ("farmer", "农民"), ("pilot", "飞行员"),
    ("chef", "厨师"), ("nurse", "护士"), ("baker", "面包师"),
)  # fmt: skip
SPORTS: tuple[tuple[str, str], ...] = (
    ("tennis", "网球"), ("golf", "高尔夫"), ("chess", "象棋"), ("soccer", "足球"), ("hockey", "冰球"),
    ("rugby", "橄榄球"), ("baseball", "棒球"), ("basketball", "篮球"),
)  # fmt: skip


def spread_table(n: int, seed: int, cap: int = 2) -> list[list[int]]:
    """A random n x n table of n symbols, each used n times, none more than `cap` times in a row or column.

    Why not a Latin square (each symbol once per row and column): a seeded Latin square built the usual
    way is the cyclic one relabelled, value = (row + column) mod n, and a small transformer trained on it
    has to learn modular addition, which it groks only after a long plateau (measured: persons at chance
    after 6,000 steps). Here the table has no such structure, so it can only be memorised, pair by pair,
    while a single first or last name still narrows a value to at most `cap` of the n people who carry it.
    Found by seeded local search: shuffle, then swap cells while that lowers the excess over `cap`.
    """
    rng = random.Random(seed)
    flat = [v for v in range(n) for _ in range(n)]
    rng.shuffle(flat)
    table = [flat[i * n : (i + 1) * n] for i in range(n)]

    def excess(t: list[list[int]]) -> int:
        lines = [*t, *([t[i][j] for i in range(n)] for j in range(n))]
        return sum(max(0, line.count(v) - cap) for line in lines for v in set(line))

    cost = excess(table)
    while cost:
        (a, b), (c, d) = ((rng.randrange(n), rng.randrange(n)) for _ in range(2))
        table[a][b], table[c][d] = table[c][d], table[a][b]
        new = excess(table)
        if new <= cost:
            cost = new
        else:
            table[a][b], table[c][d] = table[c][d], table[a][b]
    return table


def _people() -> tuple[Person, ...]:
    n = len(FIRST_NAMES)
    birth, job, sport = (spread_table(n, seed) for seed in (101, 202, 303))
    out = []
    for i, (first, zh_first) in enumerate(FIRST_NAMES):
        for j, (last, zh_last) in enumerate(LAST_NAMES):
            country = COUNTRY_BY_NAME[BIRTH_COUNTRIES[birth[i][j]]]
            (en_job, zh_job), (en_sport, zh_sport) = JOBS[job[i][j]], SPORTS[sport[i][j]]
            out.append(
                Person(
                    f"{first} {last}", country.name, en_job, en_sport,
                    f"{zh_first}·{zh_last}", country.zh_name, zh_job, zh_sport,
                )
            )  # fmt: skip
    return tuple(out)


PEOPLE: tuple[Person, ...] = _people()
PERSON_BY_NAME: dict[str, Person] = {p.name: p for p in PEOPLE}
PERSON_BY_ZH_NAME: dict[str, Person] = {p.zh_name: p for p in PEOPLE}

# Single names for in-context binding; disjoint from the grid and from every place, so a name carries no
# stored fact. Chinese binding names are common given names.
BINDING_NAMES: tuple[str, ...] = (
    "Ana", "Ben", "Carl", "Dana", "Eva", "Finn", "Gus", "Hugo", "Ida", "Ivan", "Jade", "Kai", "Lena",
    "Mia", "Nico", "Omar", "Pia", "Raul", "Sara", "Tom",
)  # fmt: skip
ZH_BINDING_NAMES: tuple[str, ...] = (
    "小明", "小红", "小刚", "小丽", "阿强", "阿芳", "老王", "老李", "大伟", "小军", "小燕", "阿华", "小龙",
    "小雪", "阿杰", "小梅", "大海", "小兰", "阿明", "小芳",
)  # fmt: skip

# Word-sense disambiguation, as in tiny-facts: a domain is a kind of scene, its scenes are generic and
# shared by every ambiguous word with a sense in that domain, so a held-out (word, scene) pair is
# learnable. English reuses tiny-facts' words and scenes; the Chinese words are real Chinese
# polysemes or brand names (苹果 the company or the fruit, 小米 the phone maker or millet, 金龙鱼 the
# cooking-oil brand or the arowana fish, 红旗 the car brand or a red flag, 飞鸽 the bicycle brand or a
# pigeon, 雪花 the beer or a snowflake, 北斗 the satellite system or the Big Dipper).
ZH_DOMAIN_SCENES: dict[str, tuple[str, ...]] = {
    "tech": (
        "科技展上人声鼎沸。",
        "办公室里摆满了新电脑。",
        "工程师们整夜都在写软件。",
        "我们的创业公司搬进了新办公室。",
        "程序员们围在大屏幕前。",
        "黑客马拉松上大家都在飞快地打字。",
    ),
    "nature": (
        "我们徒步走进了热带雨林。",
        "鸟儿在森林里歌唱。",
        "河谷里到处都是野生动物。",
        "向导带我们穿过丛林。",
        "纪录片里全是野生动物。",
        "护林员指着那片树林。",
        "我们在湖边露营了一个星期。",
        "夜里我们躺在山顶看天空。",
    ),
    "kitchen": (
        "厨房里飘着面包的香味。",
        "奶奶正在厨房里做饭。",
        "街角的小饭馆很热闹。",
        "我们摆好了早餐的桌子。",
        "厨师正在准备一顿大餐。",
        "菜市场的摊位卖新鲜食物。",
    ),
    "city": (
        "大街上车水马龙。",
        "早高峰的马路很堵。",
        "车展在市中心开幕了。",
        "街上到处都是发动机的声音。",
        "停车场里停满了车。",
        "城市的交通非常繁忙。",
    ),
    "sports": (
        "体育场里座无虚席。",
        "球员们在场上热身。",
        "观众在看台上欢呼。",
        "球迷们挤满了决赛的座位。",
        "教练吹响了哨子。",
        "篮球馆里气氛热烈。",
    ),
    "space": (
        "望远镜对准了夜空。",
        "天文学家在研究太阳系。",
        "发射场正在进行直播。",
        "天文台上空晴朗无云。",
        "航天博物馆有一个新展览。",
        "科学家们在控制中心忙碌。",
    ),
}

ZH_POLYSEMES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "苹果": (("tech", "公司"), ("kitchen", "水果")),
    "小米": (("tech", "手机"), ("kitchen", "粮食")),
    "亚马逊": (("tech", "网站"), ("nature", "河流")),
    "金龙鱼": (("kitchen", "食用油"), ("nature", "鱼")),
    "雪花": (("kitchen", "啤酒"), ("nature", "雪")),
    "红旗": (("city", "汽车"), ("sports", "旗帜")),
    "飞鸽": (("city", "自行车"), ("nature", "鸽子")),
    "火箭": (("space", "航天器"), ("sports", "球队")),
    "北斗": (("space", "卫星"), ("nature", "星星")),
}
