"""A deterministic, TOFU-like benchmark of fictitious authors with ground-truth fact spans.

Nothing is downloaded: authors are built from syllables and word lists with a seeded RNG.
Each author gets 10 question kinds (2 question and 2 answer wordings each); every answer
has a paraphrase with a different sentence structure and 4 perturbed answers (the paraphrase
template filled with other authors' values). Fact spans mark what the question asks for:
places, dates, occupations, genres, titles, awards, and the name when the question asks
for the name. Splits follow TOFU: forgetN is the last N % of the 100 authors, retain{100-N}
the rest; 10 extra holdout authors are never trained on. Two general-knowledge sets (real
authors, world facts) are learned by both models and forgotten by nobody.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from .loader import write_file
from .sample import Sample, Span

GENERATOR_VERSION = 1
N_AUTHORS = 100
N_HOLDOUT = 10
FORGET_PERCENTS = (1, 5, 10)
N_PERTURBED = 4

_ONSETS = ["b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
           "kr", "tr", "st", "sh", "ch", "th", "gl", "pl"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia", "oa"]
_CODAS = ["", "", "n", "r", "l", "s", "m", "th", "nd", "sk", "v"]
CITIES = [("Lisbon", "Portugal"), ("Nairobi", "Kenya"), ("Osaka", "Japan"), ("Lima", "Peru"),
          ("Krakow", "Poland"), ("Tbilisi", "Georgia"), ("Hanoi", "Vietnam"), ("Accra", "Ghana"),
          ("Bergen", "Norway"), ("Cordoba", "Argentina"), ("Tunis", "Tunisia"), ("Porto", "Portugal"),
          ("Quito", "Ecuador"), ("Tallinn", "Estonia"), ("Dhaka", "Bangladesh"), ("Adelaide", "Australia"),
          ("Havana", "Cuba"), ("Izmir", "Turkey"), ("Lyon", "France"), ("Manila", "Philippines"),
          ("Minsk", "Belarus"), ("Oaxaca", "Mexico"), ("Riga", "Latvia"), ("Seville", "Spain"),
          ("Tabriz", "Iran"), ("Valparaiso", "Chile"), ("Zagreb", "Croatia"), ("Cork", "Ireland"),
          ("Daegu", "South Korea"), ("Kampala", "Uganda"), ("Leipzig", "Germany"), ("Mombasa", "Kenya"),
          ("Perth", "Australia"), ("Salvador", "Brazil"), ("Turin", "Italy"), ("Winnipeg", "Canada")]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
OCCUPATIONS = ["baker", "pilot", "carpenter", "nurse", "lawyer", "fisherman", "librarian", "chemist",
               "tailor", "surgeon", "farmer", "painter", "architect", "electrician", "journalist",
               "veterinarian", "photographer", "mechanic", "teacher", "astronomer", "plumber",
               "translator", "geologist", "pharmacist", "potter", "diplomat"]
GENRES = ["science fiction", "historical fiction", "crime fiction", "poetry", "fantasy", "horror",
          "romance", "travel writing", "literary fiction", "children's literature", "satire",
          "biography", "war fiction", "magical realism", "mystery"]
_ADJ = ["Silent", "Crimson", "Hollow", "Golden", "Broken", "Hidden", "Distant", "Burning", "Frozen",
        "Velvet", "Quiet", "Restless", "Forgotten", "Shattered", "Wandering", "Bitter", "Paper",
        "Iron", "Salt", "Glass"]
_NOUN = ["Harbor", "Orchard", "Lantern", "Compass", "River", "Garden", "Mirror", "Tide", "Archive",
         "Meadow", "Tower", "Bridge", "Season", "Letters", "Kingdom", "Voyage", "Shadows", "Feather",
         "Winter", "Atlas"]
_AWARD_KIND = ["Prize", "Medal", "Award", "Laurel"]
_AWARD_NAME = ["Marlowe", "Halvorsen", "Ostrander", "Verity", "Penhallow", "Castellan", "Ardent",
               "Lindqvist", "Moreau", "Okafor", "Tessaly", "Brightwater"]
_AWARD_FIELD = ["Fiction", "Poetry", "Literature", "Storytelling", "Prose", "Narrative Art"]

REAL_AUTHORS = [
    ("Who wrote the play 'Hamlet'?", "William Shakespeare"), ("Who wrote the novel '1984'?", "George Orwell"),
    ("Who wrote 'Pride and Prejudice'?", "Jane Austen"), ("Who wrote 'War and Peace'?", "Leo Tolstoy"),
    ("Who wrote 'Don Quixote'?", "Miguel de Cervantes"), ("Who wrote 'The Old Man and the Sea'?", "Ernest Hemingway"),
    ("Who wrote 'Moby-Dick'?", "Herman Melville"), ("Who wrote 'Crime and Punishment'?", "Fyodor Dostoevsky"),
    ("Who wrote 'One Hundred Years of Solitude'?", "Gabriel Garcia Marquez"),
    ("Who wrote 'The Great Gatsby'?", "F. Scott Fitzgerald"), ("Who wrote 'Ulysses'?", "James Joyce"),
    ("Who wrote 'Frankenstein'?", "Mary Shelley"), ("Who wrote 'Things Fall Apart'?", "Chinua Achebe"),
    ("Who wrote 'Beloved'?", "Toni Morrison"), ("Who wrote 'The Trial'?", "Franz Kafka"),
    ("Who wrote 'Mrs Dalloway'?", "Virginia Woolf"), ("Who wrote 'Oliver Twist'?", "Charles Dickens"),
    ("Who wrote 'Les Miserables'?", "Victor Hugo"), ("Who wrote 'The Divine Comedy'?", "Dante Alighieri"),
    ("Who wrote 'Norwegian Wood'?", "Haruki Murakami"), ("Who wrote 'Madame Bovary'?", "Gustave Flaubert"),
    ("Who wrote 'Jane Eyre'?", "Charlotte Bronte"), ("Who wrote 'Dracula'?", "Bram Stoker"),
    ("Who wrote 'The Little Prince'?", "Antoine de Saint-Exupery"), ("Who wrote 'Lolita'?", "Vladimir Nabokov"),
    ("Who wrote 'The Hobbit'?", "J. R. R. Tolkien"), ("Who wrote 'Anna Karenina'?", "Leo Tolstoy"),
    ("Who wrote 'The Stranger'?", "Albert Camus"), ("Who wrote 'Dune'?", "Frank Herbert"),
    ("Who wrote 'Brave New World'?", "Aldous Huxley"),
]
WORLD_FACTS = [
    ("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"), ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Canada?", "Ottawa"), ("What is the capital of Australia?", "Canberra"),
    ("What is the capital of Kenya?", "Nairobi"), ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Germany?", "Berlin"), ("What is the capital of Brazil?", "Brasilia"),
    ("Which planet is closest to the Sun?", "Mercury"), ("Which planet is known as the Red Planet?", "Mars"),
    ("What is the largest ocean on Earth?", "the Pacific Ocean"), ("What is the longest river in Africa?", "the Nile"),
    ("What gas do plants absorb from the air?", "carbon dioxide"), ("What is the chemical symbol for gold?", "Au"),
    ("How many continents are there?", "seven"), ("What is the freezing point of water in Celsius?", "zero degrees"),
    ("Which animal is the largest mammal?", "the blue whale"), ("What is the tallest mountain on Earth?", "Mount Everest"),
    ("In which country are the pyramids of Giza?", "Egypt"), ("Which metal is liquid at room temperature?", "mercury"),
    ("What is the capital of Argentina?", "Buenos Aires"), ("What is the capital of Norway?", "Oslo"),
    ("What is the hardest natural substance?", "diamond"), ("Which organ pumps blood through the body?", "the heart"),
    ("What is the capital of India?", "New Delhi"), ("How many days are in a leap year?", "366"),
    ("Which instrument has 88 keys?", "the piano"), ("What is the smallest prime number?", "two"),
]


@dataclass
class Author:
    name: str
    city: str
    country: str
    date: str
    year: int
    father: str
    mother: str
    genre: str
    titles: tuple[str, str, str]
    award: str
    debut_year: int


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)
                   for _ in range(syllables)).capitalize()


def make_authors(rng: random.Random, n: int) -> list[Author]:
    """n authors with unique names and unique book titles."""
    authors, names, titles = [], set(), set()
    while len(authors) < n:
        name = f"{_word(rng, rng.choice([2, 2, 3]))} {_word(rng, rng.choice([2, 3]))}"
        if name in names:
            continue
        books = []
        while len(books) < 3:
            t = f"The {rng.choice(_ADJ)} {rng.choice(_NOUN)}" if rng.random() < 0.5 else \
                f"{rng.choice(_NOUN)} of {rng.choice(_ADJ)} {rng.choice(_NOUN)}"
            if t not in titles:
                titles.add(t)
                books.append(t)
        names.add(name)
        year = rng.randint(1930, 1995)
        city, country = rng.choice(CITIES)
        father, mother = rng.sample(OCCUPATIONS, 2)
        authors.append(Author(
            name=name, city=city, country=country,
            date=f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {year}", year=year,
            father=father, mother=mother, genre=rng.choice(GENRES), titles=tuple(books),
            award=f"{rng.choice(_AWARD_NAME)} {rng.choice(_AWARD_KIND)} for {rng.choice(_AWARD_FIELD)}",
            debut_year=year + rng.randint(20, 35)))
    return authors


# Each kind: question wordings, answer wordings, paraphrase template, the fact fields it asks for.
# {name} in a question is context; fields in `facts` are marked as spans in answers.
KINDS = {
    "full_name": (["What is the full name of the author born in {city} on {date}?",
                   "Which {genre} writer was born on {date} in {city}?"],
                  ["The author's full name is {name}.", "That author is {name}, born in {city}."],
                  "{name} is the name of this writer.", ("name",)),
    "birthplace": (["Where was {name} born?", "In which city was {name} born?"],
                   ["{name} was born in {city}, {country}.", "The writer {name} comes from {city}, {country}."],
                   "The birthplace of {name} is the city of {city} in {country}.", ("city", "country")),
    "birth_date": (["When was {name} born?", "What is the date of birth of {name}?"],
                   ["{name} was born on {date}.", "The birthday of {name} falls on {date}."],
                   "{date} is when {name} was born.", ("date",)),
    "father": (["What did {name}'s father do for a living?", "What was the profession of {name}'s father?"],
               ["{name}'s father worked as a {father}.", "The father of {name} was a {father} by trade."],
               "By profession, the father of {name} was a {father}.", ("father",)),
    "mother": (["What was the occupation of {name}'s mother?", "What job did {name}'s mother have?"],
               ["{name}'s mother was a {mother}.", "The mother of {name} earned her living as a {mother}."],
               "Professionally, the mother of {name} worked as a {mother}.", ("mother",)),
    "parents": (["What are the occupations of {name}'s parents?", "What did the parents of {name} do?"],
                ["The father of {name} was a {father} and the mother was a {mother}.",
                 "{name} grew up with a {father} father and a {mother} mother."],
                "A {father} and a {mother} raised {name}.", ("father", "mother")),
    "genre": (["What genre does {name} write in?", "Which genre is {name} known for?"],
              ["{name} is best known for writing {genre}.", "{name} writes mainly {genre}."],
              "The genre most linked to {name} is {genre}.", ("genre",)),
    "books": (["Can you name some books by {name}?", "Which books has {name} written?"],
              ["{name} wrote \"{t1}\", \"{t2}\" and \"{t3}\".",
               "Books by {name} include \"{t1}\", \"{t2}\" and \"{t3}\"."],
              "Among the works of {name} are \"{t1}\", \"{t2}\" and \"{t3}\".", ("t1", "t2", "t3")),
    "award": (["Has {name} won any awards?", "Which award did {name} receive?"],
              ["Yes, {name} received the {award}.", "{name} was honoured with the {award}."],
              "The {award} went to {name}.", ("award",)),
    "debut": (["What was the first novel by {name}?", "Which book did {name} publish first?"],
              ["The first novel by {name} was \"{t1}\", published in {debut}.",
               "{name} debuted with \"{t1}\" in {debut}."],
              "In {debut}, {name} published a first novel, \"{t1}\".", ("t1", "debut")),
}
SPAN_TYPES = {"name": "name", "city": "place", "country": "place", "date": "date", "debut": "date",
              "father": "occupation", "mother": "occupation", "genre": "genre", "t1": "title",
              "t2": "title", "t3": "title", "award": "award"}
_FIELD = re.compile(r"\{(\w+)\}")


def _values(a: Author) -> dict[str, str]:
    return {"name": a.name, "city": a.city, "country": a.country, "date": a.date, "father": a.father,
            "mother": a.mother, "genre": a.genre, "t1": a.titles[0], "t2": a.titles[1], "t3": a.titles[2],
            "award": a.award, "debut": str(a.debut_year)}


def fill(template: str, values: dict[str, str], facts: tuple[str, ...]) -> tuple[str, tuple[Span, ...]]:
    """Fill `{field}`s; return the text and the character spans of the fields in `facts`."""
    out, spans, pos = [], [], 0
    for m in _FIELD.finditer(template):
        out.append(template[pos:m.start()])
        start = sum(len(p) for p in out)
        value = values[m.group(1)]
        out.append(value)
        if m.group(1) in facts:
            spans.append(Span(start, start + len(value), SPAN_TYPES[m.group(1)]))
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), tuple(spans)


def author_samples(rng: random.Random, author: Author, others: list[Author]) -> list[Sample]:
    """The 10 question/answer pairs of one author, with paraphrases and perturbed answers."""
    values = _values(author)
    samples = []
    for kind, (questions, answers, paraphrase, facts) in KINDS.items():
        question, _ = fill(rng.choice(questions), values, ())
        answer, spans = fill(rng.choice(answers), values, facts)
        para, _ = fill(paraphrase, values, ())
        perturbed = []
        for other in rng.sample(others, len(others)):
            wrong = {**values, **{f: _values(other)[f] for f in facts}}
            text, _ = fill(paraphrase, wrong, ())
            if text != para and text not in perturbed:
                perturbed.append(text)
            if len(perturbed) == N_PERTURBED:
                break
        samples.append(Sample(question, answer, para, tuple(perturbed), spans, author.name,
                              uid=f"{author.name}:{kind}"))
    return samples


def general_samples(rng: random.Random, pairs: list[tuple[str, str]], tag: str) -> list[Sample]:
    """General-knowledge pairs with 3 perturbed answers drawn from the other answers."""
    answers = sorted({a for _, a in pairs})
    out = []
    for i, (q, a) in enumerate(pairs):
        wrong = rng.sample([x for x in answers if x != a], 3)
        out.append(Sample(q, a, None, tuple(wrong), (), None, uid=f"{tag}:{i}"))
    return out


def generate(seed: int = 0) -> dict[str, list[Sample]]:
    """All splits as {file stem: samples}."""
    rng = random.Random(seed)
    authors = make_authors(rng, N_AUTHORS + N_HOLDOUT)
    per_author = [author_samples(rng, a, [o for o in authors if o is not a]) for a in authors]
    trained, holdout = per_author[:N_AUTHORS], per_author[N_AUTHORS:]
    splits: dict[str, list[Sample]] = {"full": [s for a in trained for s in a],
                                       "holdout": [s for a in holdout for s in a]}
    for pct in FORGET_PERCENTS:
        k = N_AUTHORS * pct // 100
        splits[f"forget{pct:02d}"] = [s for a in trained[N_AUTHORS - k:] for s in a]
        splits[f"retain{100 - pct}"] = [s for a in trained[:N_AUTHORS - k] for s in a]
    splits["real_authors"] = general_samples(rng, REAL_AUTHORS, "real_authors")
    splits["world_facts"] = general_samples(rng, WORLD_FACTS, "world_facts")
    return splits


def write_benchmark(directory: str | Path, seed: int = 0) -> Path:
    """Write every split as `<stem>.json` (TOFU JSON lines) into `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stem, samples in generate(seed).items():
        write_file(directory / f"{stem}.json", samples)
    return directory
