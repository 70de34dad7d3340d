"""The fixed knowledge base behind the tiny-facts corpus.

Why a hand-written table: interpretability methods are checked against ground truth, so every fact the
model is trained on must be known exactly and never change between runs. The data is real-world-ish
(real capitals, languages, currencies and continents, ASCII spellings) but what matters is that it is
internally consistent: each country has exactly one answer per relation. Languages and currencies repeat
across countries (Spanish, euro, dollar), as in the real world.

Nothing here is random at import time; `corpus.py` derives templates, splits and documents from it.
"""

from __future__ import annotations

from typing import NamedTuple


class Country(NamedTuple):
    name: str
    capital: str
    language: str
    currency: str
    continent: str


class Person(NamedTuple):
    """A made-up person; `name` is "First Last" drawn from `PERSON_NAME_POOL`."""

    name: str
    birth_country: str
    job: str
    sport: str


# Capitals are chosen so that the first word of every capital is unique among capitals (e.g. only one
# "San ..." and no "Port ..."), because an eval scores only the first token of a multi-word answer.
COUNTRIES: tuple[Country, ...] = (
    # Europe
    Country("France", "Paris", "French", "euro", "Europe"),
    Country("Germany", "Berlin", "German", "euro", "Europe"),
    Country("Italy", "Rome", "Italian", "euro", "Europe"),
    Country("Spain", "Madrid", "Spanish", "euro", "Europe"),
    Country("Portugal", "Lisbon", "Portuguese", "euro", "Europe"),
    Country("United Kingdom", "London", "English", "pound", "Europe"),
    Country("Ireland", "Dublin", "English", "euro", "Europe"),
    Country("Netherlands", "Amsterdam", "Dutch", "euro", "Europe"),
    Country("Belgium", "Brussels", "Dutch", "euro", "Europe"),
    Country("Luxembourg", "Luxembourg", "Luxembourgish", "euro", "Europe"),
    Country("Switzerland", "Bern", "German", "franc", "Europe"),
    Country("Austria", "Vienna", "German", "euro", "Europe"),
    Country("Denmark", "Copenhagen", "Danish", "krone", "Europe"),
    Country("Norway", "Oslo", "Norwegian", "krone", "Europe"),
    Country("Sweden", "Stockholm", "Swedish", "krona", "Europe"),
    Country("Finland", "Helsinki", "Finnish", "euro", "Europe"),
    Country("Iceland", "Reykjavik", "Icelandic", "krona", "Europe"),
    Country("Poland", "Warsaw", "Polish", "zloty", "Europe"),
    Country("Czechia", "Prague", "Czech", "koruna", "Europe"),
    Country("Slovakia", "Bratislava", "Slovak", "euro", "Europe"),
    Country("Hungary", "Budapest", "Hungarian", "forint", "Europe"),
    Country("Romania", "Bucharest", "Romanian", "leu", "Europe"),
    Country("Bulgaria", "Sofia", "Bulgarian", "lev", "Europe"),
    Country("Greece", "Athens", "Greek", "euro", "Europe"),
    Country("Croatia", "Zagreb", "Croatian", "euro", "Europe"),
    Country("Serbia", "Belgrade", "Serbian", "dinar", "Europe"),
    Country("Slovenia", "Ljubljana", "Slovenian", "euro", "Europe"),
    Country("Ukraine", "Kyiv", "Ukrainian", "hryvnia", "Europe"),
    Country("Russia", "Moscow", "Russian", "ruble", "Europe"),
    Country("Belarus", "Minsk", "Belarusian", "ruble", "Europe"),
    Country("Lithuania", "Vilnius", "Lithuanian", "euro", "Europe"),
    Country("Latvia", "Riga", "Latvian", "euro", "Europe"),
    Country("Estonia", "Tallinn", "Estonian", "euro", "Europe"),
    Country("Albania", "Tirana", "Albanian", "lek", "Europe"),
    Country("Malta", "Valletta", "Maltese", "euro", "Europe"),
    Country("Cyprus", "Nicosia", "Greek", "euro", "Europe"),
    Country("Moldova", "Chisinau", "Romanian", "leu", "Europe"),
    # Asia
    Country("Turkey", "Ankara", "Turkish", "lira", "Asia"),
    Country("Georgia", "Tbilisi", "Georgian", "lari", "Asia"),
    Country("Armenia", "Yerevan", "Armenian", "dram", "Asia"),
    Country("Azerbaijan", "Baku", "Azerbaijani", "manat", "Asia"),
    Country("China", "Beijing", "Chinese", "yuan", "Asia"),
    Country("Japan", "Tokyo", "Japanese", "yen", "Asia"),
    Country("South Korea", "Seoul", "Korean", "won", "Asia"),
    Country("India", "New Delhi", "Hindi", "rupee", "Asia"),
    Country("Pakistan", "Islamabad", "Urdu", "rupee", "Asia"),
    Country("Bangladesh", "Dhaka", "Bengali", "taka", "Asia"),
    Country("Sri Lanka", "Colombo", "Sinhala", "rupee", "Asia"),
    Country("Nepal", "Kathmandu", "Nepali", "rupee", "Asia"),
    Country("Bhutan", "Thimphu", "Dzongkha", "ngultrum", "Asia"),
    Country("Indonesia", "Jakarta", "Indonesian", "rupiah", "Asia"),
    Country("Malaysia", "Kuala Lumpur", "Malay", "ringgit", "Asia"),
    Country("Singapore", "Singapore", "English", "dollar", "Asia"),
    Country("Thailand", "Bangkok", "Thai", "baht", "Asia"),
    Country("Vietnam", "Hanoi", "Vietnamese", "dong", "Asia"),
    Country("Philippines", "Manila", "Filipino", "peso", "Asia"),
    Country("Cambodia", "Phnom Penh", "Khmer", "riel", "Asia"),
    Country("Laos", "Vientiane", "Lao", "kip", "Asia"),
    Country("Myanmar", "Naypyidaw", "Burmese", "kyat", "Asia"),
    Country("Mongolia", "Ulaanbaatar", "Mongolian", "tugrik", "Asia"),
    Country("Kazakhstan", "Astana", "Kazakh", "tenge", "Asia"),
    Country("Uzbekistan", "Tashkent", "Uzbek", "som", "Asia"),
    Country("Kyrgyzstan", "Bishkek", "Kyrgyz", "som", "Asia"),
    Country("Afghanistan", "Kabul", "Pashto", "afghani", "Asia"),
    Country("Iran", "Tehran", "Persian", "rial", "Asia"),
    Country("Iraq", "Baghdad", "Arabic", "dinar", "Asia"),
    Country("Saudi Arabia", "Riyadh", "Arabic", "riyal", "Asia"),
    Country("United Arab Emirates", "Abu Dhabi", "Arabic", "dirham", "Asia"),
    Country("Qatar", "Doha", "Arabic", "riyal", "Asia"),
    Country("Kuwait", "Kuwait City", "Arabic", "dinar", "Asia"),
    Country("Oman", "Muscat", "Arabic", "rial", "Asia"),
    Country("Yemen", "Sanaa", "Arabic", "rial", "Asia"),
    Country("Syria", "Damascus", "Arabic", "pound", "Asia"),
    Country("Lebanon", "Beirut", "Arabic", "pound", "Asia"),
    # Africa
    Country("Egypt", "Cairo", "Arabic", "pound", "Africa"),
    Country("Morocco", "Rabat", "Arabic", "dirham", "Africa"),
    Country("Algeria", "Algiers", "Arabic", "dinar", "Africa"),
    Country("Tunisia", "Tunis", "Arabic", "dinar", "Africa"),
    Country("Libya", "Tripoli", "Arabic", "dinar", "Africa"),
    Country("Sudan", "Khartoum", "Arabic", "pound", "Africa"),
    Country("Ethiopia", "Addis Ababa", "Amharic", "birr", "Africa"),
    Country("Kenya", "Nairobi", "Swahili", "shilling", "Africa"),
    Country("Tanzania", "Dodoma", "Swahili", "shilling", "Africa"),
    Country("Uganda", "Kampala", "English", "shilling", "Africa"),
    Country("Rwanda", "Kigali", "Kinyarwanda", "franc", "Africa"),
    Country("Nigeria", "Abuja", "English", "naira", "Africa"),
    Country("Ghana", "Accra", "English", "cedi", "Africa"),
    Country("Senegal", "Dakar", "French", "franc", "Africa"),
    Country("Mali", "Bamako", "French", "franc", "Africa"),
    Country("Niger", "Niamey", "French", "franc", "Africa"),
    Country("Ivory Coast", "Yamoussoukro", "French", "franc", "Africa"),
    Country("Cameroon", "Yaounde", "French", "franc", "Africa"),
    Country("South Africa", "Pretoria", "English", "rand", "Africa"),
    Country("Namibia", "Windhoek", "English", "dollar", "Africa"),
    Country("Botswana", "Gaborone", "Tswana", "pula", "Africa"),
    Country("Zimbabwe", "Harare", "English", "dollar", "Africa"),
    Country("Zambia", "Lusaka", "English", "kwacha", "Africa"),
    Country("Angola", "Luanda", "Portuguese", "kwanza", "Africa"),
    Country("Mozambique", "Maputo", "Portuguese", "metical", "Africa"),
    Country("Madagascar", "Antananarivo", "Malagasy", "ariary", "Africa"),
    Country("Somalia", "Mogadishu", "Somali", "shilling", "Africa"),
    # North America (Central America and the Caribbean included)
    Country("United States", "Washington", "English", "dollar", "North America"),
    Country("Canada", "Ottawa", "English", "dollar", "North America"),
    Country("Mexico", "Mexico City", "Spanish", "peso", "North America"),
    Country("Guatemala", "Guatemala City", "Spanish", "quetzal", "North America"),
    Country("Honduras", "Tegucigalpa", "Spanish", "lempira", "North America"),
    Country("Nicaragua", "Managua", "Spanish", "cordoba", "North America"),
    Country("Costa Rica", "San Jose", "Spanish", "colon", "North America"),
    Country("Panama", "Panama City", "Spanish", "balboa", "North America"),
    Country("Cuba", "Havana", "Spanish", "peso", "North America"),
    Country("Jamaica", "Kingston", "English", "dollar", "North America"),
    # South America
    Country("Brazil", "Brasilia", "Portuguese", "real", "South America"),
    Country("Argentina", "Buenos Aires", "Spanish", "peso", "South America"),
    Country("Chile", "Santiago", "Spanish", "peso", "South America"),
    Country("Peru", "Lima", "Spanish", "sol", "South America"),
    Country("Colombia", "Bogota", "Spanish", "peso", "South America"),
    Country("Venezuela", "Caracas", "Spanish", "bolivar", "South America"),
    Country("Ecuador", "Quito", "Spanish", "dollar", "South America"),
    Country("Bolivia", "La Paz", "Spanish", "boliviano", "South America"),
    Country("Paraguay", "Asuncion", "Spanish", "guarani", "South America"),
    Country("Uruguay", "Montevideo", "Spanish", "peso", "South America"),
    Country("Guyana", "Georgetown", "English", "dollar", "South America"),
    Country("Suriname", "Paramaribo", "Dutch", "dollar", "South America"),
    # Oceania
    Country("Australia", "Canberra", "English", "dollar", "Oceania"),
    Country("New Zealand", "Wellington", "English", "dollar", "Oceania"),
    Country("Fiji", "Suva", "Fijian", "dollar", "Oceania"),
    Country("Samoa", "Apia", "Samoan", "tala", "Oceania"),
)

# Country names that read as "the X" inside a sentence ("The capital of the United States is").
COUNTRIES_WITH_THE: frozenset[str] = frozenset(
    {"United Kingdom", "United States", "Netherlands", "Philippines", "United Arab Emirates", "Ivory Coast"}
)

COUNTRY_BY_NAME: dict[str, Country] = {c.name: c for c in COUNTRIES}
COUNTRY_BY_CAPITAL: dict[str, Country] = {c.capital: c for c in COUNTRIES}

# One shared pool: every name here is used both as a first and as a last name, so "Jordan Taylor" and
# "Taylor Jordan" are two different people; a model must bind the name *order*, not a bag of names.
PERSON_NAME_POOL: tuple[str, ...] = (
    "Jordan", "Taylor", "Morgan", "Riley", "Casey", "Avery", "Parker", "Quinn", "Reese", "Blake",
    "Hayden", "Cameron", "Drew", "Ellis", "Emerson", "Finley", "Harper", "Logan", "Mason", "Nolan",
    "Carter", "Spencer", "Tanner", "Wesley", "Grant", "Bailey", "Hunter", "Jackson", "Sawyer", "Dylan",
)  # fmt: skip

# Birth countries have pairwise distinct first words (no two "South ..."), so the first answer token
# identifies the country.
JOBS: tuple[str, ...] = (
    "doctor", "teacher", "lawyer", "farmer", "pilot", "chef", "nurse", "baker", "dentist", "banker",
    "writer", "plumber", "carpenter", "journalist", "surgeon", "painter", "pharmacist", "mechanic",
    "librarian", "sailor",
)  # fmt: skip
SPORTS: tuple[str, ...] = (
    "tennis", "golf", "chess", "soccer", "hockey", "rugby", "baseball", "basketball", "volleyball",
    "badminton", "handball", "polo", "softball", "lacrosse",
)  # fmt: skip

# Generated once with a seeded RNG and frozen here as data; the first 24 rows of the generator were 12
# reversed-name pairs ("Jordan Taylor" / "Taylor Jordan") with different birth country, job and sport.
PEOPLE: tuple[Person, ...] = (
    Person("Dylan Sawyer", "Finland", "plumber", "basketball"),
    Person("Jackson Hayden", "Sweden", "surgeon", "rugby"),
    Person("Spencer Taylor", "Chile", "painter", "lacrosse"),
    Person("Avery Finley", "Chile", "nurse", "chess"),
    Person("Logan Grant", "Iran", "painter", "lacrosse"),
    Person("Wesley Sawyer", "Egypt", "baker", "hockey"),
    Person("Spencer Ellis", "South Africa", "sailor", "hockey"),
    Person("Grant Tanner", "Thailand", "pharmacist", "soccer"),
    Person("Hayden Grant", "Morocco", "journalist", "softball"),
    Person("Reese Jackson", "Sri Lanka", "surgeon", "badminton"),
    Person("Ellis Dylan", "Greece", "sailor", "golf"),
    Person("Cameron Wesley", "Turkey", "pharmacist", "basketball"),
    Person("Taylor Riley", "Chile", "mechanic", "baseball"),
    Person("Drew Quinn", "Costa Rica", "plumber", "handball"),
    Person("Hayden Hunter", "Argentina", "banker", "chess"),
    Person("Bailey Grant", "Thailand", "writer", "softball"),
    Person("Hunter Quinn", "Chile", "writer", "chess"),
    Person("Bailey Reese", "Finland", "mechanic", "handball"),
    Person("Tanner Taylor", "Cuba", "mechanic", "rugby"),
    Person("Nolan Taylor", "Finland", "doctor", "handball"),
    Person("Morgan Wesley", "South Africa", "farmer", "badminton"),
    Person("Jordan Parker", "Austria", "mechanic", "lacrosse"),
    Person("Cameron Riley", "Germany", "writer", "lacrosse"),
    Person("Avery Spencer", "Austria", "chef", "volleyball"),
    Person("Hayden Jordan", "Italy", "nurse", "softball"),
    Person("Logan Casey", "Greece", "sailor", "hockey"),
    Person("Tanner Grant", "New Zealand", "chef", "lacrosse"),
    Person("Avery Blake", "Saudi Arabia", "surgeon", "tennis"),
    Person("Nolan Casey", "Poland", "chef", "basketball"),
    Person("Harper Drew", "Finland", "surgeon", "badminton"),
    Person("Nolan Morgan", "China", "pharmacist", "tennis"),
    Person("Jordan Nolan", "Colombia", "banker", "handball"),
    Person("Mason Reese", "Germany", "dentist", "rugby"),
    Person("Sawyer Taylor", "Sweden", "doctor", "handball"),
    Person("Taylor Jordan", "Canada", "banker", "hockey"),
    Person("Spencer Wesley", "Mexico", "chef", "softball"),
    Person("Hunter Nolan", "Russia", "sailor", "lacrosse"),
    Person("Jordan Taylor", "Chile", "doctor", "tennis"),
    Person("Grant Hayden", "Japan", "plumber", "badminton"),
    Person("Hunter Logan", "Vietnam", "sailor", "basketball"),
    Person("Parker Hunter", "Russia", "banker", "soccer"),
    Person("Hunter Jackson", "Morocco", "carpenter", "golf"),
    Person("Taylor Ellis", "Saudi Arabia", "plumber", "polo"),
    Person("Harper Wesley", "Argentina", "farmer", "softball"),
    Person("Taylor Wesley", "Morocco", "painter", "rugby"),
    Person("Taylor Bailey", "Portugal", "banker", "golf"),
    Person("Tanner Ellis", "Cuba", "teacher", "badminton"),
    Person("Nolan Hunter", "Italy", "nurse", "chess"),
    Person("Casey Dylan", "Japan", "painter", "lacrosse"),
    Person("Bailey Morgan", "Egypt", "pharmacist", "lacrosse"),
    Person("Mason Nolan", "Chile", "banker", "baseball"),
    Person("Tanner Parker", "Egypt", "surgeon", "tennis"),
    Person("Ellis Drew", "Cuba", "dentist", "tennis"),
    Person("Cameron Emerson", "Spain", "chef", "polo"),
    Person("Jackson Cameron", "Mexico", "journalist", "baseball"),
    Person("Cameron Casey", "Turkey", "journalist", "polo"),
    Person("Avery Riley", "Austria", "teacher", "softball"),
    Person("Hunter Ellis", "France", "surgeon", "softball"),
    Person("Cameron Grant", "Japan", "painter", "softball"),
    Person("Spencer Cameron", "Ireland", "carpenter", "tennis"),
    Person("Bailey Sawyer", "Japan", "doctor", "chess"),
    Person("Morgan Quinn", "Nigeria", "mechanic", "lacrosse"),
    Person("Cameron Reese", "Ghana", "pilot", "baseball"),
    Person("Tanner Emerson", "France", "painter", "golf"),
    Person("Reese Bailey", "Portugal", "lawyer", "badminton"),
    Person("Spencer Blake", "Peru", "baker", "tennis"),
    Person("Bailey Hayden", "New Zealand", "surgeon", "golf"),
    Person("Jordan Quinn", "Morocco", "sailor", "chess"),
    Person("Emerson Nolan", "Chile", "surgeon", "hockey"),
    Person("Riley Jackson", "Costa Rica", "pilot", "rugby"),
    Person("Spencer Tanner", "Ghana", "chef", "soccer"),
    Person("Dylan Tanner", "Colombia", "mechanic", "lacrosse"),
    Person("Quinn Tanner", "China", "surgeon", "polo"),
    Person("Wesley Emerson", "Australia", "plumber", "polo"),
    Person("Sawyer Nolan", "Canada", "plumber", "softball"),
    Person("Spencer Jackson", "Turkey", "carpenter", "polo"),
    Person("Reese Nolan", "Cuba", "mechanic", "rugby"),
    Person("Quinn Blake", "Canada", "surgeon", "chess"),
    Person("Casey Cameron", "Thailand", "banker", "softball"),
    Person("Taylor Morgan", "Mexico", "banker", "polo"),
    Person("Drew Jordan", "China", "dentist", "lacrosse"),
    Person("Wesley Hayden", "Greece", "doctor", "polo"),
    Person("Blake Hunter", "Austria", "doctor", "tennis"),
    Person("Hunter Grant", "Chile", "plumber", "soccer"),
    Person("Emerson Drew", "Turkey", "painter", "chess"),
    Person("Emerson Hayden", "Chile", "librarian", "golf"),
    Person("Jackson Tanner", "Argentina", "farmer", "volleyball"),
    Person("Harper Dylan", "Japan", "plumber", "chess"),
)

PERSON_BY_NAME: dict[str, Person] = {p.name: p for p in PEOPLE}

# Single-word first names for in-context binding ("Ana lives in Paris. Ana speaks French."). Disjoint from
# the person pool and from every country/capital so that a name carries no stored fact.
BINDING_NAMES: tuple[str, ...] = (
    "Ana", "Ben", "Carl", "Dana", "Eva", "Finn", "Gus", "Hugo", "Ida", "Ivan", "Jade", "Kai", "Lena",
    "Mia", "Nico", "Omar", "Pia", "Raul", "Sara", "Tom", "Uma", "Vera", "Will", "Yara", "Zoe", "Ada",
    "Cleo", "Dev", "Eli", "Fay", "Ian", "Joy", "Kim", "Leo", "Max", "Nina", "Otto", "Rosa", "Sam", "Tara",
)  # fmt: skip

# Word-sense disambiguation. A *domain* is a kind of scene; its scene sentences are generic, so the same
# scene is shared by every ambiguous word that has a sense in that domain. That sharing is what makes a
# held-out (word, scene) pair learnable: the scene is seen in training with other words.
DOMAIN_SCENES: dict[str, tuple[str, ...]] = {
    "tech": (
        "At the tech fair the crowd was loud.",
        "The office was full of new laptops.",
        "The engineers were writing software all night.",
        "Our startup moved into a new office downtown.",
        "The programmers gathered around a big screen.",
        "Everyone at the hackathon was typing fast.",
    ),
    "nature": (
        "We hiked deep into the rainforest.",
        "The zoo was crowded on Sunday morning.",
        "Birds were singing in the wild forest.",
        "The river valley was full of wildlife.",
        "Our guide led us through the jungle.",
        "The nature film showed wild animals.",
        "The park ranger pointed at the trees.",
        "We camped near the swamp for a week.",
    ),
    "kitchen": (
        "The kitchen smelled of fresh bread.",
        "Grandma was baking in the kitchen.",
        "The cafe on the corner was busy.",
        "We set the table for breakfast.",
        "The chef was preparing a big meal.",
        "The market stall sold fresh food.",
    ),
    "city": (
        "The building site was full of workers.",
        "Traffic was heavy on the main road.",
        "The street was noisy with engines.",
        "Workers in hard hats were building a tower.",
        "The car show opened downtown.",
        "The harbor was busy with heavy cargo.",
    ),
    "sports": (
        "The stadium was packed for the match.",
        "The players warmed up on the field.",
        "The crowd cheered at the sports ground.",
        "The team practiced on the green pitch.",
        "The coach blew the whistle.",
        "Fans filled the seats for the final.",
    ),
    "music": (
        "The concert hall was completely full.",
        "The band was tuning up on stage.",
        "The music festival lasted all weekend.",
        "Fans sang along at the rock show.",
        "The radio played old songs all night.",
        "The singers rehearsed in the studio.",
    ),
    "space": (
        "The telescope pointed at the night sky.",
        "The astronomers studied the solar system.",
        "The launch was shown live on TV.",
        "At the observatory the sky was clear.",
        "The space museum had a new exhibit.",
        "We watched the stars from the hill.",
    ),
}

# word -> its two senses as (domain, sense word). The sense word is the answer in the query frame
# "... the {word}, meaning the" -> " {sense}"; all sense words are distinct, so the answer depends on
# both the word and the scene (the nature domain alone has eight words with eight different answers).
POLYSEMES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "apple": (("tech", "company"), ("kitchen", "fruit")),
    "python": (("tech", "language"), ("nature", "snake")),
    "jaguar": (("city", "car"), ("nature", "cat")),
    "mouse": (("tech", "device"), ("nature", "rodent")),
    "amazon": (("tech", "website"), ("nature", "river")),
    "java": (("tech", "code"), ("kitchen", "coffee")),
    "bat": (("sports", "stick"), ("nature", "mammal")),
    "crane": (("city", "machine"), ("nature", "bird")),
    "bass": (("music", "guitar"), ("nature", "fish")),
    "mercury": (("space", "planet"), ("music", "singer")),
    "cricket": (("sports", "game"), ("nature", "insect")),
    "rocket": (("space", "spacecraft"), ("kitchen", "salad")),
}
