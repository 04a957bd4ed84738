"""Synthetic data for bench/research_memories.py, generated from a seed (nothing downloaded).

- :func:`needle_stream`: K facts (a five-digit code for a named locker) among N distractor
  sentences built from the same vocabulary (other lockers, the same names and places, other
  numbers), so that lexical and semantic near-misses abound; each fact is asked later through a
  paraphrase ("Which number opens ...?").
- :func:`conversations`: multi-session chats, one persona per scope. Session 1 states facts as
  answers to the assistant's questions; later sessions update some of them ("I moved to ...");
  chit-chat turns fill every session. Questions ask for the current value through a paraphrase
  of the assistant's question.
- :func:`passkey_document`: filler prose with a passkey sentence at a chosen depth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

NAMES = [
    "Ada",
    "Bram",
    "Cora",
    "Dane",
    "Edda",
    "Finn",
    "Gwen",
    "Hugo",
    "Iris",
    "Jude",
    "Kai",
    "Lena",
    "Milo",
    "Nora",
    "Otto",
    "Pia",
    "Quin",
    "Rosa",
    "Saul",
    "Tess",
    "Ugo",
    "Vera",
    "Wren",
    "Xavi",
    "Yara",
    "Zeno",
    "Alba",
    "Boris",
    "Cleo",
    "Dario",
    "Elio",
    "Fern",
    "Gil",
    "Hana",
    "Ivo",
    "Juno",
    "Kira",
    "Lars",
    "Maya",
    "Nils",
]
COLORS = [
    "amber",
    "azure",
    "beige",
    "black",
    "bronze",
    "coral",
    "crimson",
    "cyan",
    "ebony",
    "emerald",
    "gold",
    "grey",
    "indigo",
    "ivory",
    "jade",
    "khaki",
    "lemon",
    "lilac",
    "magenta",
    "maroon",
    "mint",
    "navy",
    "ochre",
    "olive",
    "orange",
    "pearl",
    "pink",
    "plum",
    "ruby",
    "rust",
    "saffron",
    "sage",
    "scarlet",
    "silver",
    "slate",
    "tan",
    "teal",
    "umber",
    "violet",
    "white",
]
ANIMALS = [
    "badger",
    "bear",
    "beaver",
    "bison",
    "crane",
    "crow",
    "deer",
    "eagle",
    "falcon",
    "ferret",
    "finch",
    "fox",
    "frog",
    "gecko",
    "goat",
    "hare",
    "hawk",
    "heron",
    "ibis",
    "jackal",
    "koala",
    "lark",
    "lemur",
    "lynx",
    "marten",
    "mole",
    "moose",
    "newt",
    "otter",
    "owl",
    "panda",
    "pike",
    "puffin",
    "quail",
    "raven",
    "robin",
    "seal",
    "shrew",
    "stork",
    "swan",
    "tiger",
    "toad",
    "viper",
    "walrus",
    "wolf",
    "wren",
    "yak",
]
PLACES = [
    "attic",
    "basement",
    "lobby",
    "garage",
    "library",
    "kitchen",
    "greenhouse",
    "workshop",
    "cellar",
    "terrace",
    "gym",
    "studio",
    "chapel",
    "pantry",
    "laundry",
    "archive",
    "boathouse",
    "barn",
    "office",
    "gallery",
]
THINGS = [
    "umbrella",
    "ledger",
    "lantern",
    "toolbox",
    "kettle",
    "compass",
    "teapot",
    "camera",
    "guitar",
    "atlas",
    "chessboard",
    "telescope",
    "blanket",
    "suitcase",
    "violin",
    "radio",
    "typewriter",
    "microscope",
    "bicycle",
    "hammock",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

DISTRACTORS = [
    "The {c} {a} locker was moved to the {p} on {d}.",
    "{n} painted the {c} {a} locker a brighter shade last week.",
    "Someone left a {t} inside the {c} {a} locker by the {p}.",
    "{n} forgot the code of the {c} {a} locker again and called the porter.",
    "The {c} {a} locker in the {p} has a dent near its hinge.",
    "{n} and {m} argued about who owns the {c} {a} locker.",
    "The porter says the {c} {a} locker code changes every spring.",
    "{n} borrowed a {t} from the {p} on {d} and returned it {k} days later.",
    "Room {x} in the {p} was cleaned on {d} morning.",
    "{n} counted {k} {a} feathers near the {p} window.",
    "The {p} clock stopped at {h} o'clock on {d}.",
    "{n} wrote {x} in the ledger, but nobody knew what it meant.",
    "A {c} {t} was found in the {p} and handed to {m}.",
    "{n} said the {c} {a} cabinet code is written on a card in the {p}.",
    "The bus to the {p} left at {h} past {k} on {d}.",
    "{n} keeps a {c} {t} in the {p} for rainy days.",
    "Order number {x} for a {t} arrived at the {p} on {d}.",
    "{n} thinks the {c} {a} locker is haunted.",
]
FACT = "The code that opens the {c} {a} locker is {code}."
QUESTIONS = [
    "Which number opens the {c} {a} locker?",
    "What do I type to unlock the {c} {a} locker?",
    "I need to get into the {c} {a} locker; what is its combination?",
]


@dataclass(frozen=True)
class Needle:
    position: int  # index in the stream
    text: str
    question: str
    answer: str


def needle_stream(n: int, k: int, seed: int = 0) -> tuple[list[str], list[Needle]]:
    """``n`` distractors with ``k`` facts inserted at spread-out positions (``n + k`` texts)."""
    rng = random.Random(seed)
    lockers = rng.sample([(c, a) for c in COLORS for a in ANIMALS], k)
    texts: list[str] = []
    seen: set[str] = set()
    while len(texts) < n:
        text = _fill(rng.choice(DISTRACTORS), rng)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    positions = sorted(rng.sample(range(n + k), k))
    needles = []
    for (color, animal), pos in zip(lockers, positions, strict=True):
        code = f"{rng.randrange(10_000, 100_000)}"
        fact = FACT.format(c=color, a=animal, code=code)
        question = rng.choice(QUESTIONS).format(c=color, a=animal)
        texts.insert(pos, fact)
        needles.append(Needle(pos, fact, question, code))
    return texts, needles


def _fill(template: str, rng: random.Random) -> str:
    n, m = rng.sample(NAMES, 2)
    return template.format(
        n=n, m=m, c=rng.choice(COLORS), a=rng.choice(ANIMALS), p=rng.choice(PLACES),
        t=rng.choice(THINGS), d=rng.choice(DAYS), k=rng.randrange(2, 40),
        x=rng.randrange(10_000, 100_000), h=rng.randrange(1, 13),
    )  # fmt: skip


# -- multi-session conversations ---------------------------------------------------------------

ATTRIBUTES = {
    "city": (
        "Where are you living these days?",
        ["Lisbon", "Oslo", "Denver", "Kyoto", "Nairobi", "Hamburg", "Quito", "Perth"],
        "I live in {v}.",
        "Actually I moved to {v} last month.",
        "Remind me, which city is home for you now?",
    ),
    "job": (
        "What do you do for work?",
        ["nurse", "carpenter", "pilot", "teacher", "chemist", "baker", "translator", "surveyor"],
        "I work as a {v}.",
        "I changed careers; I am a {v} now.",
        "What is your current profession?",
    ),
    "pet": (
        "Do you have any pets?",
        ["a beagle", "two cats", "a parrot", "a tortoise", "a rabbit", "goldfish", "a ferret"],
        "Yes, I have {v}.",
        "Sadly that changed; now I only have {v}.",
        "What animals share your home?",
    ),
    "sport": (
        "How do you stay active?",
        ["swimming", "rowing", "climbing", "tennis", "cycling", "judo", "fencing", "yoga"],
        "Mostly {v}, three times a week.",
        "I gave that up and took up {v} instead.",
        "Which sport are you doing at the moment?",
    ),
    "car": (
        "What do you drive?",
        ["a red hatchback", "an old van", "a blue sedan", "an electric scooter", "a pickup"],
        "I drive {v}.",
        "I sold my car; now I get around with {v}.",
        "How do you get around these days?",
    ),
}
CHITCHAT = [
    ("How was your weekend?", "Quiet. I read a novel about {t}s and slept late."),
    ("Any plans for the holidays?", "Maybe a trip to see my cousin {n}, if the trains run."),
    ("What did you have for lunch?", "A {c} soup from the place next to the {p}."),
    ("Did you watch the match?", "Only the second half; {n} kept talking through it."),
    ("How is the weather there?", "Grey all week, but {d} should be sunny."),
    ("Read anything good lately?", "A book on {a}s; the chapter about their nests was great."),
    ("How are your neighbours?", "{n} next door is building a {t} in the {p}."),
    ("Busy day?", "Meetings until {h}, then I cleaned the {p}."),
]


@dataclass(frozen=True)
class Turn:
    session: int
    cue: str  # the assistant's turn before it
    text: str  # the user's turn


@dataclass(frozen=True)
class Probe:
    user: str
    attribute: str
    question: str
    current: str  # the user turn holding the current value
    stale: str | None  # the superseded turn, when the fact was updated


def conversations(
    personas: int, sessions: int = 4, chitchat: int = 12, seed: int = 0
) -> tuple[dict[str, list[Turn]], list[Probe]]:
    """Per persona: turns over ``sessions`` sessions; facts in session 1, updates in a later
    session for about half of them; ``chitchat`` filler turns per session."""
    rng = random.Random(seed)
    chats: dict[str, list[Turn]] = {}
    probes: list[Probe] = []
    for p in range(personas):
        user = f"user{p:03d}"
        by_session: list[list[Turn]] = [[] for _ in range(sessions)]
        for attr, (ask, values, state, update, question) in ATTRIBUTES.items():
            first, second = rng.sample(values, 2)
            said = Turn(0, ask, state.format(v=first))
            by_session[0].append(said)
            stale = None
            current = said.text
            if rng.random() < 0.5:
                later = rng.randrange(1, sessions)
                changed = Turn(later, ask.replace("?", " now?"), update.format(v=second))
                by_session[later].append(changed)
                stale, current = said.text, changed.text
            probes.append(Probe(user, attr, question, current, stale))
        for s in range(sessions):
            for _ in range(chitchat):
                ask, reply = rng.choice(CHITCHAT)
                by_session[s].append(Turn(s, ask, _fill(reply, rng)))
            rng.shuffle(by_session[s])
        chats[user] = [t for turns in by_session for t in turns]
    return chats, probes


# -- passkey documents -------------------------------------------------------------------------


def passkey_document(n_sentences: int, depth: float, seed: int = 0) -> tuple[str, str]:
    """Filler prose of ``n_sentences`` sentences with a passkey sentence at ``depth`` (0..1);
    returns (document, passkey)."""
    rng = random.Random(seed)
    sentences = [_fill(rng.choice(DISTRACTORS), rng) for _ in range(n_sentences)]
    key = f"{rng.randrange(10_000, 100_000)}"
    sentences.insert(
        int(depth * n_sentences), f"The pass key is {key}. Remember it. {key} is the pass key."
    )
    return " ".join(sentences), key
