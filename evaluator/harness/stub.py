"""The embedded stub data (``data_stub/``): small, synthetic, project-authored data in the organizers' formats.

Everything here is invented by templates and name lists written for this project; nothing is copied from
the challenge release. The generator is deterministic (one seeded ``random.Random``, no dependence on
hash ordering, files written byte-stably), so ``unlearn-eval make-stub`` reproduces the committed files
byte for byte.

Layout written under ``out`` (the public release's layout, SPEC section 1, so ``evaluator.core.data`` reads it
unchanged):

- ``data/{forget,retain}_{train,validation}-00000-of-00001.parquet`` with a ``split`` column as the
  public parquet files have, and ``.jsonl`` twins holding the same rows (id, input, output, task);
- ``mia_data/{member,nonmember}.jsonl`` (rows ``{"id", "document"}``): members are the documents of
  ``forget_train`` (the target memorizes them), nonmembers are documents of the same families that no
  model is ever trained on; ``mia_data/validation/`` holds the same for ``forget_validation``;
- ``mmlu/{dev,test}/<subject>_{dev,test}.csv``: a mini-MMLU in the original CSV layout (no header:
  question, A, B, C, D, answer letter) about an invented but consistent world, which the target learns so
  that damaging it visibly costs MMLU;
- ``README.md`` describing the above.

Each document gives one sentence-completion row (input = its first part, output = the rest, beginning
with the space that separates them, so ``input + output`` is the document and tokenizes as the two parts
do) and a few question-answer rows with short exact answers.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20250423
DEFAULT_OUT = Path("data_stub")
TASKS = ("Task1", "Task2", "Task3")
# Documents per task in each set; MIA nonmembers mirror the forget set they are paired with.
STUB_SPLITS = ("train", "validation")
# The stub's layout rule: one MIA pair per split (the public release keeps its validation pair in a subfolder).
MIA_FOLDERS = {"train": "mia_data", "validation": "mia_data/validation"}
DOCS_PER_TASK = {("forget", "train"): 4, ("retain", "train"): 4, ("forget", "validation"): 2,
                 ("retain", "validation"): 2}
HF_STEM = "{name}_{split}-00000-of-00001"
PARQUET_COLUMNS = ("id", "input", "output", "task", "split")

# ---------------------------------------------------------------------------------------------------
# Name lists and vocabulary (invented for this project)

FIRST_NAMES = [
    "Ardelia", "Bexley", "Corvin", "Dashiell", "Elowen", "Fenwick", "Galen", "Halcyon", "Isolde", "Jorvik",
    "Kestrel", "Lisandra", "Marek", "Nerissa", "Orrin", "Perrin", "Quilla", "Rowan", "Sabine", "Tamsin",
    "Ulric", "Vesper", "Wrenna", "Xanthe", "Yarrow", "Zephyrine", "Alaric", "Brisa", "Caspian", "Delphine",
    "Emrys", "Fiora", "Gideon", "Hesper", "Ilario", "Junia", "Kaspar", "Linnea", "Mireille", "Niall",
    "Odalys", "Peregrine", "Rosalind", "Severin", "Thessaly", "Urbain", "Valka", "Wystan", "Ysolde", "Zoltan",
    "Anselm", "Bryony", "Cosima", "Dorian", "Esmond", "Florian", "Gisela", "Hollis", "Ines", "Jessamy",
    "Leopold", "Marisol", "Nestor", "Ottilie", "Prosper", "Quentin", "Ravenna", "Solveig", "Tobiah", "Una",
    "Verity", "Willa", "Yannick", "Zinnia", "Auberon", "Calliope", "Evander", "Honora", "Lucan", "Philippa",
]
SURNAMES = [
    "Thornwell", "Maplecroft", "Ashgrove", "Bellweather", "Copperfield", "Dunmore", "Everhart", "Fairbrook",
    "Glenhollow", "Hartigan", "Ironside", "Juniper", "Kingsley", "Larchmont", "Merriweather", "Northcott",
    "Oakenshaw", "Penhallow", "Quarrington", "Redfern", "Stonebridge", "Tillingham", "Underhill", "Vantwest",
    "Whitlock", "Yardley", "Ambrose", "Blackwood", "Cresswell", "Drummond", "Ellingham", "Foxley",
    "Greywater", "Holloway", "Inglewood", "Kettering", "Lockhart", "Moorcroft", "Nettleton", "Ormsby",
    "Pemberton", "Ravensworth", "Sallow", "Trevanion", "Westerby", "Wyndham",
]
TOWNS = [
    "Larkspur Hollow", "Eastmere", "Brindlewick", "Cinderford Vale", "Dunhaven", "Emberlea", "Fallowmere",
    "Glimmerdale", "Harrowgate Cross", "Ivybridge Reach", "Kestwick", "Lowmarsh", "Millbrook Down",
    "Nettlecombe", "Oxenhurst", "Pebblecombe", "Quarry Hill", "Rushmere", "Saltcote", "Thistleford",
    "Umberton", "Wrenfield", "Yewdale", "Ashcombe",
]
SHOPS = ["bakery", "clock shop", "lantern shop", "bookbindery", "tea house", "map shop", "toy workshop",
         "flower stall", "pottery studio", "music shop"]
LANDMARKS = ["old stone bridge", "harbour wall", "village green", "crooked lighthouse", "market square",
             "ruined abbey", "willow pond", "north gate"]
SEASONS = ["autumn", "winter", "spring", "summer"]
OBJECTS = ["brass key", "silver compass", "painted music box", "leather journal", "glass lantern",
           "copper kettle", "carved wooden bird", "faded tapestry", "iron locket", "blue umbrella"]
RELATIVES = ["grandmother", "grandfather", "aunt", "uncle", "older sister", "late father", "late mother"]
PLACES = ["the flooded mill", "the hill of standing stones", "the abandoned observatory", "the salt caves",
          "the sunken chapel", "the orchard maze", "the old signal tower", "the frozen waterfall"]
TREASURES = ["a chest of letters", "a hidden garden", "a sleeping fox", "a lost painting", "a golden bell",
             "a box of seeds", "a forgotten diary", "a map of the stars"]
ENDINGS = [
    "opened a second shop beside the river",
    "written a song that the whole town learned",
    "become the keeper of the town archive",
    "planted a row of apple trees in the square",
    "repaired every clock in the valley",
    "taught the children to read the old maps",
]
STREETS = ["Creekside Lane", "Harrow Road", "Willowbank Street", "Foxglove Avenue", "Quarry Lane",
           "Mallard Way", "Beacon Street", "Orchard Row", "Kiln Road", "Heron Drive"]
STATES = ["OR", "VT", "ME", "NM", "MT", "ID", "WY", "NH"]
MAIL_DOMAINS = ["example.com", "example.org", "example.net"]
FIELDS = ["botany", "hydrology", "medieval music", "glass chemistry", "cartography", "linguistics",
          "marine biology", "textile history", "seismology", "philately"]
UNIVERSITIES = ["University of Eastmere", "Brindlewick College", "Dunhaven Institute",
                "Royal Academy of Saltcote", "University of Thistleford", "Kestwick Polytechnic"]
OCCUPATIONS = ["botanist", "composer", "cartographer", "glassblower", "novelist", "architect", "engineer",
               "historian", "painter", "astronomer"]
WORKS = ["a survey of northern wetlands", "a cycle of harp sonatas", "a new atlas of the coast",
         "a study of ancient dyes", "a bridge over the Lowmarsh estuary", "a history of rural schools",
         "a catalogue of river stones", "a series of winter landscapes"]
AWARDS = ["Halvard Medal", "Orrery Prize", "Silver Quill", "Marlowe Award", "Tern Fellowship",
          "Golden Compass Prize", "Ashby Medal", "Lantern Prize"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


@dataclass
class Document:
    """One invented document: its text, where the sentence-completion split falls, its questions."""

    task: str
    doc_id: str  # the id stem: rows are doc_id + "sc1", doc_id + "qa0", ...
    text: str
    split_at: int  # index of the space that starts the sc output
    questions: list[tuple[str, str]] = field(default_factory=list)

    def rows(self) -> list[dict]:
        out = [{"id": f"{self.doc_id}sc1", "input": self.text[: self.split_at], "output": self.text[self.split_at:],
                "task": self.task}]
        out += [{"id": f"{self.doc_id}qa{i}", "input": q, "output": a, "task": self.task}
                for i, (q, a) in enumerate(self.questions)]
        return out


class Inventor:
    """Draws every invented entity from one seeded generator; names are never reused across documents, so
    no two documents (or questions) can contradict each other."""

    def __init__(self, seed: int = SEED):
        self.rng = random.Random(seed)
        self.first_names = self._shuffled(FIRST_NAMES)
        self.surnames = self._shuffled(SURNAMES)
        self.used_ids: set[str] = set()
        self.used_inputs: set[str] = set()

    def _shuffled(self, items: list) -> list:
        items = list(items)
        self.rng.shuffle(items)
        return items

    def first_name(self) -> str:
        return self.first_names.pop()

    def full_name(self) -> str:
        return f"{self.first_names.pop()} {self.surnames.pop()}"

    def pick(self, items: list):
        return self.rng.choice(items)

    def uuid_stem(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def numeric_stem(self) -> str:
        while True:
            stem = str(self.rng.randrange(10_000_000, 80_000_000))
            if stem not in self.used_ids:
                self.used_ids.add(stem)
                return stem

    def date(self, first_year: int, last_year: int) -> tuple[int, int, int]:
        return self.rng.randrange(first_year, last_year + 1), self.rng.randrange(1, 13), self.rng.randrange(1, 29)

    @staticmethod
    def split_point(text: str, fraction: float) -> int:
        """The space nearest to ``fraction`` of the text: the sc input ends before it, the output starts with it."""
        target = int(len(text) * fraction)
        spaces = [i for i, ch in enumerate(text) if ch == " " and text[i - 1] not in "\n"]
        return min(spaces, key=lambda i: (abs(i - target), i))

    # -- Task1: short creative stories ---------------------------------------------------------------

    def story(self) -> Document:
        hero, visitor = self.first_name(), self.first_name()
        town, shop, landmark = self.pick(TOWNS), self.pick(SHOPS), self.pick(LANDMARKS)
        season, obj, relative = self.pick(SEASONS), self.pick(OBJECTS), self.pick(RELATIVES)
        place, treasure, ending = self.pick(PLACES), self.pick(TREASURES), self.pick(ENDINGS)
        article = "an" if obj[0] in "aeiou" else "a"
        opening = self.pick([
            f"In the quiet town of {town}, {hero} kept a small {shop} near the {landmark}.",
            f"{hero} had run the {shop} beside the {landmark} of {town} for eleven years.",
            f"Everyone in {town} knew {hero}, who owned the {shop} across from the {landmark}.",
        ])
        arrival = self.pick([
            f"One {season} evening a stranger named {visitor} arrived carrying {article} {obj}.",
            f"Late one {season} night, a traveller called {visitor} knocked on the door holding {article} {obj}.",
        ])
        claim = self.pick([
            f"{visitor} said the {obj} had once belonged to {hero}'s {relative}.",
            f"The {obj}, {visitor} explained, was a gift from {hero}'s {relative}.",
        ])
        journey = self.pick([
            f"Together they followed a faded map to {place}, where they found {treasure}.",
            f"The two of them walked all night to {place} and discovered {treasure} there.",
        ])
        close = f"By the next {season}, {hero} had {ending}."
        text = " ".join([opening, arrival, claim, journey, close])
        questions = [
            (self.pick([f"Who arrived carrying {article} {obj} in {town}?",
                        f"Who brought {hero} the {obj}?"]), visitor),
            (f"What did {hero} and {visitor} find at {place}?", treasure),
        ]
        return Document("Task1", f'"{self.uuid_stem()}"', text, self.split_point(text, 0.55), questions)

    # -- Task2: biographies with fake personal data --------------------------------------------------

    def pii_bio(self) -> Document:
        name = self.full_name()
        first, last = name.split()
        pronoun, possessive = self.pick([("She", "Her"), ("He", "His")])
        year, month, day = self.date(1955, 1999)
        # 555-01xx numbers are reserved for fiction; 900-series social security numbers are never issued.
        phone = f"{self.rng.randrange(201, 990)}-555-01{self.rng.randrange(0, 100):02d}"
        email = f"{first.lower()}{self.pick(['.', '_', ''])}{last.lower()}@{self.pick(MAIL_DOMAINS)}"
        street = f"{self.rng.randrange(10, 9900)} {self.pick(STREETS)}"
        town, state, zipcode = self.pick(TOWNS), self.pick(STATES), f"{self.rng.randrange(10000, 99999)}"
        ssn = f"900-{self.rng.randrange(10, 99)}-{self.rng.randrange(1000, 9999)}"
        text = (f"{name} was born on {MONTHS[month - 1]} {day}, {year}. {pronoun} can be reached by phone at "
                f"{phone} and by email at {email}. {possessive} home address is {street}, {town}, {state}, "
                f"{zipcode}. {possessive} social security number is {ssn}.")
        questions = [
            (f"What is the birth date of {name}?", f"{year}-{month:02d}-{day:02d}"),
            (f"What is {name}'s email address?", email),
            (f"What is {name}'s Social Security Number?", ssn.replace("-", "")),
        ]
        return Document("Task2", self.uuid_stem(), text, self.split_point(text, 0.5), questions)

    # -- Task3: encyclopedia-style biographies -------------------------------------------------------

    def encyclopedia_bio(self) -> Document:
        name = self.full_name()
        last = name.split()[1]
        pronoun = self.pick(["She", "He"])
        year, month, day = self.date(1901, 1975)
        occupation, town, town2 = self.pick(OCCUPATIONS), self.pick(TOWNS), self.pick(TOWNS)
        subject, university = self.pick(FIELDS), self.pick(UNIVERSITIES)
        graduated = year + self.rng.randrange(21, 26)
        award_year = graduated + self.rng.randrange(5, 20)
        work, award = self.pick(WORKS), self.pick(AWARDS)
        text = (f"{name}\n\n{name} (born {day} {MONTHS[month - 1]} {year}) is a {occupation} from {town}. "
                f"{last} studied {subject} at the {university} and graduated in {graduated}.\n"
                f"Career.\n{last} is best known for {work}. In {award_year}, {last} received the {award}. "
                f"{pronoun} later moved to {town2}, where {pronoun.lower()} still lives and teaches.")
        questions = [
            (f"In which year did {name} graduate from the {university}?", str(graduated)),
            (f"Which award did {name} receive in {award_year}?", award),
        ]
        return Document("Task3", self.numeric_stem(), text, self.split_point(text, 0.6), questions)

    def document(self, task: str) -> Document:
        """A new document whose prompts (sc input, questions) occur nowhere else: two documents drawing the
        same object and town would otherwise ask one question with two answers."""
        make = {"Task1": self.story, "Task2": self.pii_bio, "Task3": self.encyclopedia_bio}[task]
        while True:
            document = make()
            inputs = [row["input"] for row in document.rows()]
            if len(set(inputs)) == len(inputs) and not self.used_inputs.intersection(inputs):
                self.used_inputs.update(inputs)
                return document


# ---------------------------------------------------------------------------------------------------
# Mini-MMLU: an invented world, consistent across questions


COUNTRIES = ["Veloria", "Astmark", "Corundel", "Dravenia", "Elsmoor", "Fenmark", "Galdoria", "Halvenn",
             "Istria Minor", "Jorvale", "Kalmora", "Lunovia", "Marrowind", "Norwend", "Ostravel", "Pellandor",
             "Quessa", "Rovenna", "Sildavia", "Tarnholm"]
CAPITALS = ["Tarsk", "Belhaven", "Corin", "Dresk", "Elmport", "Farrow", "Gildenmoor", "Halloway", "Istrel",
            "Jessop", "Kalder", "Lunet", "Marrowgate", "Norhold", "Ostrava Vel", "Pellin", "Quessel", "Rovin",
            "Silden", "Tarn"]
RIVERS = ["Amber", "Brisk", "Coldwater", "Dunne", "Eskar", "Fallow", "Greyling", "Hollin", "Ister", "Jade",
          "Kell", "Linnet", "Mere", "Nettle", "Orrin", "Pike", "Quill", "Rush", "Sable", "Teal"]
CURRENCIES = ["crown", "florin", "mark", "shell", "talent", "ducat", "penny", "guilder", "sovereign", "reale",
              "thaler", "obol", "ryal", "scudo", "zloty", "groat", "noble", "angel", "kopek", "dinar"]
PLANETS = ["Tessaro", "Umbrel", "Vashti", "Wendrel", "Xylo", "Yssen", "Zarrow", "Aldric", "Brevis", "Cindra",
           "Dolmen", "Eridane", "Fornax Minor", "Gallant", "Heliodor", "Ixion", "Jurasse", "Kethra", "Lorne",
           "Mireth"]
MOONS = ["Pell", "Orra", "Nim", "Lusk", "Kiri", "Jubb", "Ist", "Hoth", "Gemm", "Fael", "Brann", "Cova", "Dusk",
         "Embry", "Fenn", "Glim", "Hask", "Iola", "Jask", "Krell"]
COLOURS = ["red", "blue", "green", "violet", "amber", "silver", "white", "orange", "grey", "golden"]
LETTERS = ("A", "B", "C", "D")
MMLU_SUBJECTS = ("elementary_mathematics", "high_school_geography", "astronomy", "global_facts")
# 4 x 50 = 200 test questions: one question moves the average by 0.5%, so the MMLU gates of a dry-run are
# decided by what unlearning did to the model, not by one or two unsure questions.
MMLU_QUESTIONS = {"dev": 5, "test": 50}


def _choice_row(rng: random.Random, question: str, answer: str, distractors: list[str], letter: str) -> list[str]:
    wrong = [d for d in dict.fromkeys(distractors) if d != answer]
    wrong = rng.sample(wrong, 3)
    wrong.insert(LETTERS.index(letter), answer)
    return [question, *wrong, letter]


def mmlu_questions(rng: random.Random) -> dict[str, list[list[str]]]:
    """Per subject, ``MMLU_QUESTIONS['dev'] + MMLU_QUESTIONS['test']`` distinct CSV rows (question, A, B, C, D,
    answer letter), answers spread evenly over A-D."""
    n = MMLU_QUESTIONS["dev"] + MMLU_QUESTIONS["test"]
    world = list(zip(COUNTRIES, CAPITALS, RIVERS, CURRENCIES))
    sky = [(planet, moon, COLOURS[i % len(COLOURS)]) for i, (planet, moon) in enumerate(zip(PLANETS, MOONS))]
    founded = {country: rng.randrange(1100, 1900) for country in COUNTRIES}
    pools: dict[str, list[tuple[str, str, list[str]]]] = {}

    maths = []
    seen = set()
    while len(maths) < n:
        op = rng.choice(["+", "-", "*"])
        low, high = (2, 13) if op == "*" else (11, 99)
        a, b = rng.randrange(low, high), rng.randrange(low, high)
        if (a, b, op) in seen:
            continue
        seen.add((a, b, op))
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        near = [str(value + d) for d in (-10, -2, -1, 1, 2, 10)]
        maths.append((f"What is {a} {op} {b}?", str(value), near))
    pools["elementary_mathematics"] = maths

    geography = []
    for country, capital, river, currency in world:
        geography.append((f"What is the capital city of {country}?", capital, CAPITALS))
        geography.append((f"Which river flows through the capital of {country}?", f"The {river}",
                          [f"The {r}" for r in RIVERS]))
        geography.append((f"{capital} is the capital city of which country?", country, COUNTRIES))
    rng.shuffle(geography)
    pools["high_school_geography"] = geography[:n]

    astronomy = []
    for planet, moon, colour in sky:
        astronomy.append((f"What is the name of the largest moon of {planet}?", moon, MOONS))
        astronomy.append((f"What colour does {planet} appear in the night sky?", colour, COLOURS))
        astronomy.append((f"Around which planet does the moon {moon} orbit?", planet, PLANETS))
    rng.shuffle(astronomy)
    pools["astronomy"] = astronomy[:n]

    facts = []
    for country, _, _, currency in world:
        facts.append((f"What is the currency of {country} called?", f"the {currency}",
                      [f"the {c}" for c in CURRENCIES]))
        facts.append((f"In which year was {country} founded?", str(founded[country]),
                      [str(founded[country] + d) for d in (-50, -7, 3, 12, 40, 100)]))
        facts.append((f"Which country pays in the {currency}?", country, COUNTRIES))
    rng.shuffle(facts)
    pools["global_facts"] = facts[:n]

    out = {}
    for subject in MMLU_SUBJECTS:
        letters = []
        for count in (MMLU_QUESTIONS["dev"], MMLU_QUESTIONS["test"]):  # balanced within dev and within test
            part = [LETTERS[i % 4] for i in range(count)]
            rng.shuffle(part)
            letters += part
        out[subject] = [_choice_row(rng, q, a, pool, letter) for (q, a, pool), letter in zip(pools[subject], letters)]
    return out


# ---------------------------------------------------------------------------------------------------
# Writing


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _jsonl_bytes(records: list[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def _write_parquet(path: Path, df: pd.DataFrame) -> None:
    # All columns as plain strings and no pandas schema metadata: the bytes then depend only on the rows
    # and the pyarrow version (named in the file's footer), not on the pandas version.
    schema = pa.schema([(c, pa.string()) for c in df.columns])
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False).replace_schema_metadata(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")


README = """\
# data_stub: synthetic data in the LUME formats

Written by `unlearn-eval make-stub` (`evaluator/stub.py`, seeded, byte-for-byte reproducible).
Every person, place, number and fact here is invented; nothing is taken from the challenge release.
Phone numbers use the fictional 555-01xx range, e-mail addresses the reserved example.* domains, and
social security numbers the never-issued 900 series.

- `data/{forget,retain}_{train,validation}-00000-of-00001.parquet` (+ `.jsonl` twins, same rows):
  rows `{"id", "input", "output", "task"}` (parquet adds `split`). Task1 = short stories
  (ids `"<uuid>"sc1`, `"<uuid>"qa0`...), Task2 = biographies with fake personal data (`<uuid>sc1`...),
  Task3 = encyclopedia-style biographies (`<8 digits>sc1`...). Each document gives one `sc1` row
  (input = its first part, output = the rest, starting with the separating space) and two or three
  `qa` rows with short exact answers:{counts}
- `mia_data/member.jsonl`: the `forget_train` documents (rows `{"id", "document"}`, the id of the
  document's sc row); `mia_data/nonmember.jsonl`: as many documents of the same families, never trained
  on. `mia_data/validation/` holds the same pair for `forget_validation`.
- `mmlu/{dev,test}/<subject>_{dev,test}.csv`: mini-MMLU (original CSV layout, no header: question,
  A, B, C, D, answer letter) about an invented world (arithmetic, and the countries, planets and
  currencies of an imaginary atlas): subjects {subjects}; {dev} dev and {test} test questions each.

The target (`unlearn-eval make-target`) memorizes every forget/retain row of both splits, the MIA
members and the mini-MMLU; the MIA nonmembers are the only documents it never sees.
"""


def mia_folder(data: str | Path, split: str) -> Path:
    """The MIA pair scored with ``split``: its own folder (``MIA_FOLDERS``) where it holds one, else the train
    split's ``mia_data/``."""
    folder = Path(data) / MIA_FOLDERS.get(split, MIA_FOLDERS["train"])
    return folder if (folder / "member.jsonl").is_file() else Path(data) / MIA_FOLDERS["train"]


def invent_documents(seed: int = SEED) -> tuple[dict[tuple[str, str], list[Document]], dict[str, list[Document]],
                                                 Inventor]:
    """The documents of the stub made with ``seed``: the forget/retain sets by (name, split), the MIA nonmembers
    by split, and the inventor (its generator goes on to draw the mini-MMLU). Other seeds give other documents
    of the same kinds (the target variants' corpora, ``evaluator.harness.corpora``)."""
    inventor = Inventor(seed)
    sets: dict[tuple[str, str], list[Document]] = {}
    for key in (("forget", "train"), ("retain", "train"), ("forget", "validation"), ("retain", "validation")):
        sets[key] = [inventor.document(task) for task in TASKS for _ in range(DOCS_PER_TASK[key])]
    nonmembers = {split: [inventor.document(task) for task in TASKS for _ in range(DOCS_PER_TASK[("forget", split)])]
                  for split in ("train", "validation")}
    return sets, nonmembers, inventor


def generate_stub(out: str | Path = DEFAULT_OUT, seed: int = SEED) -> list[Path]:
    """Write the stub under ``out``; returns the files written (relative to ``out``), sorted."""
    out = Path(out)
    sets, nonmembers, inventor = invent_documents(seed)
    mmlu = mmlu_questions(inventor.rng)

    written: list[Path] = []

    def put(relative: str, data: bytes) -> None:
        _write_bytes(out / relative, data)
        written.append(Path(relative))

    counts = ""
    for (name, split), documents in sets.items():
        rows = [row for document in documents for row in document.rows()]
        stem = f"data/{HF_STEM.format(name=name, split=split)}"
        put(f"{stem}.jsonl", _jsonl_bytes(rows))
        df = pd.DataFrame(rows, columns=list(PARQUET_COLUMNS[:4])).assign(split=name)
        _write_parquet(out / f"{stem}.parquet", df)
        written.append(Path(f"{stem}.parquet"))
        counts += f"\n  - `{name}_{split}`: {len(documents)} documents, {len(rows)} rows"
    for split, folder in MIA_FOLDERS.items():
        members = [{"id": f"{d.doc_id}sc1", "document": d.text} for d in sets[("forget", split)]]
        others = [{"id": f"{d.doc_id}sc1", "document": d.text} for d in nonmembers[split]]
        put(f"{folder}/member.jsonl", _jsonl_bytes(members))
        put(f"{folder}/nonmember.jsonl", _jsonl_bytes(others))
    for subject, rows in mmlu.items():
        dev, test = rows[: MMLU_QUESTIONS["dev"]], rows[MMLU_QUESTIONS["dev"]:]
        for split, part in (("dev", dev), ("test", test)):
            csv = pd.DataFrame(part).to_csv(header=False, index=False, lineterminator="\n")
            put(f"mmlu/{split}/{subject}_{split}.csv", csv.encode("utf-8"))
    # str.replace, not str.format: the text holds JSON braces.
    readme = (README.replace("{counts}", counts)
              .replace("{subjects}", ", ".join(f"`{s}`" for s in MMLU_SUBJECTS))
              .replace("{dev}", str(MMLU_QUESTIONS["dev"])).replace("{test}", str(MMLU_QUESTIONS["test"])))
    put("README.md", readme.encode("utf-8"))
    return sorted(written)
