"""The offline sentiment task: SST2-style review sentences whose label follows from their wording, in the authors'
prompt format (docs/method.md §5), split into train and test with no sentence in both."""

from __future__ import annotations

import functools
import random
from typing import Literal

from pact_lightning.data.offline.base import SEED, split_of
from pact_lightning.data.types import Example

SENTIMENT_TEMPLATE = "Analyze the sentiment of the input, and respond only positive or negative.\n\nInput: {sentence}"
SENTIMENT_SIZES = {"train": 5000, "test": 500}

# ---------------------------------------------------------------------------------------------------------------------
# Sentiment: a review sentence whose label follows from its wording. Contrast templates ("X was bad, but Y was great")
# and negations make the label depend on the whole sentence, not on one keyword.

POSITIVE = ("great", "wonderful", "excellent", "delightful", "fantastic", "superb", "impressive", "enjoyable",
            "charming", "brilliant", "outstanding", "pleasant", "lovely", "terrific", "remarkable", "satisfying",
            "first-rate", "marvelous", "fun", "memorable")
NEGATIVE = ("terrible", "awful", "disappointing", "dreadful", "mediocre", "boring", "poor", "horrible", "frustrating",
            "bland", "sloppy", "unpleasant", "lousy", "dull", "awkward", "forgettable", "miserable", "shoddy",
            "annoying", "overrated")
INTENSIFIERS = ("", "", "very ", "really ", "truly ", "absolutely ", "incredibly ", "quite ", "so ", "pretty ")

# Per domain: what is reviewed, its parts, and concrete details that carry a polarity on their own.
DOMAINS = {
    "film": {
        "nouns": ("the movie", "this film", "the sequel", "the documentary", "the animated feature", "this thriller",
                  "the comedy", "the drama", "the remake", "the musical"),
        "aspects": ("the plot", "the acting", "the soundtrack", "the dialogue", "the pacing", "the ending",
                    "the cinematography", "the special effects"),
        "positive": ("I laughed the whole way through", "the cast gave moving performances",
                     "I want to watch it again", "the story kept me hooked until the last scene",
                     "I could not look away from the screen"),
        "negative": ("I nearly fell asleep halfway through", "the jokes fell completely flat",
                     "I walked out before the end", "the story made no sense at all",
                     "I checked my phone every five minutes"),
    },
    "product": {
        "nouns": ("this phone", "the new laptop", "these headphones", "the blender", "this vacuum cleaner",
                  "the coffee maker", "the backpack", "this keyboard", "the smartwatch", "the electric kettle"),
        "aspects": ("the battery", "the build quality", "the price", "the design", "the screen", "the customer support",
                    "the setup", "the packaging"),
        "positive": ("it works exactly as advertised", "it was worth every penny",
                     "it still works perfectly a year later",
                     "setting it up took two minutes", "I bought a second one for my sister"),
        "negative": ("it broke after two days", "it was a complete waste of money",
                     "it stopped charging within a week", "I returned it the next morning",
                     "half the buttons stopped working"),
    },
    "restaurant": {
        "nouns": ("the restaurant", "this cafe", "the bistro", "the pizza place", "the sushi bar", "the bakery",
                  "the diner", "the noodle shop", "the food truck", "the steakhouse"),
        "aspects": ("the food", "the service", "the atmosphere", "the dessert", "the menu", "the portions",
                    "the staff", "the coffee"),
        "positive": ("every dish was full of flavor", "we will definitely come back",
                     "the food arrived hot and fresh", "the staff made us feel welcome",
                     "I still think about the dessert"),
        "negative": ("the food arrived cold", "we waited an hour for our order", "the soup tasted burnt",
                     "the waiter ignored us all evening", "I got sick the next day"),
    },
    "book": {
        "nouns": ("the novel", "this book", "the memoir", "the cookbook", "the biography", "the short story collection",
                  "the graphic novel", "the audiobook"),
        "aspects": ("the writing", "the characters", "the story", "the ending", "the illustrations", "the prose",
                    "the first chapter", "the narration"),
        "positive": ("I could not put it down", "every chapter left me wanting more",
                     "I finished it in one sitting", "I have already recommended it to everyone I know"),
        "negative": ("I gave up after three chapters", "the plot dragged on forever",
                     "I had to force myself to finish it", "the characters were impossible to care about"),
    },
    "hotel": {
        "nouns": ("the hotel", "our room", "the resort", "this hostel", "the guesthouse", "the cabin we rented",
                  "the beach villa"),
        "aspects": ("the bed", "the view", "the breakfast", "the location", "the pool", "the check-in",
                    "the bathroom", "the wifi"),
        "positive": ("the staff went out of their way to help", "the room was spotless",
                     "we slept better than at home", "we have already booked our next stay"),
        "negative": ("the room smelled of smoke", "the shower never got hot", "we found stains on the sheets",
                     "the noise kept us awake all night"),
    },
}

# {n}/{N}: the reviewed thing (lower/capitalised), {i}: intensifier, {a}: adjective with the label's polarity,
# {o}: adjective with the opposite polarity, {x}: a part of it, {d}: a detail with the label's polarity.
SENTIMENT_TEMPLATES = {
    "both": ("{N} was {i}{a}.", "I thought {n} was {i}{a}.", "Honestly, {n} is {i}{a}.", "I found {n} {i}{a}.",
             "{N} was {i}{a}, and {d}.", "{D}; {n} was {i}{a}.", "{X} was {o}, but {n} was {i}{a} overall.",
             "Although {x} was {o}, {n} was {i}{a}.",
             "My friends said {n} was {o}, but I found it {i}{a}.", "{N}? {D}."),
    # Negation is used only where it is unambiguous: "not great" is negative, but "not bad" is not clearly positive.
    "positive": ("I have no complaints: {n} was {i}{a}.", "I would definitely recommend {n} to a friend.",
                 "Nothing about {n} disappointed me; it was {i}{a}."),
    "negative": ("{N} was not {o} at all.", "I would never recommend {n} to anyone.",
                 "I wanted to like {n}, but it was {i}{a}.", "{N} was not {o}; it was {i}{a}."),
}


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def _review(rng: random.Random, label: str) -> str:
    domain = DOMAINS[rng.choice(sorted(DOMAINS))]
    same, other = (POSITIVE, NEGATIVE) if label == "positive" else (NEGATIVE, POSITIVE)
    n, x, d = rng.choice(domain["nouns"]), rng.choice(domain["aspects"]), rng.choice(domain[label])
    template = rng.choice(SENTIMENT_TEMPLATES["both"] + SENTIMENT_TEMPLATES[label])
    return template.format(n=n, N=_cap(n), x=x, X=_cap(x), d=d, D=_cap(d), i=rng.choice(INTENSIFIERS),
                           a=rng.choice(same), o=rng.choice(other))


@functools.lru_cache(maxsize=None)
def _sentiment_splits() -> dict[str, tuple[Example, ...]]:
    rng = random.Random(SEED)
    per_label = sum(SENTIMENT_SIZES.values()) // 2
    sentences = {"positive": {}, "negative": {}}  # dicts keep insertion order, so the draw is reproducible
    for label, seen in sentences.items():
        while len(seen) < per_label:
            seen.setdefault(_review(rng, label), None)
    ordered = {label: list(seen) for label, seen in sentences.items()}
    splits, start = {}, 0
    for split, size in SENTIMENT_SIZES.items():  # each unique sentence lands in exactly one split
        pairs = [(s, label) for label in ordered for s in ordered[label][start:start + size // 2]]
        start += size // 2
        rng.shuffle(pairs)
        splits[split] = tuple(Example(SENTIMENT_TEMPLATE.format(sentence=s), label, f"offline/sentiment/{split}", row,
                                      label=label) for row, (s, label) in enumerate(pairs))
    return splits


def sentiment(split: Literal["train", "test"]) -> list[Example]:
    """SST2-style sentiment examples; ``label`` and ``response`` are "positive" or "negative", balanced."""
    return list(split_of(_sentiment_splits(), split, "sentiment"))
