"""Task-accuracy scorers, each ``scorer(response, gold) -> bool`` (docs/method.md §5.3, the authors' utility evals)."""

from __future__ import annotations

import re
import string

from pact_lightning.errors import ConfigError


class ExactLabel:
    """SST2-style: the response's first word, stripped of punctuation and case, must equal the gold label, and no
    other label may appear among its words.

    The authors compare the whole stripped output to "positive"/"Positive"; taking the first word also accepts
    "Positive." or "positive sentiment", which a short ``task_max_new_tokens`` budget would otherwise cut into misses.
    An answer naming both labels ("positive or negative", which a degenerate fine-tune repeats for every item) is not
    a classification, so it is wrong for either gold label.
    """

    def __init__(self, labels: tuple[str, ...] | list[str] = ("positive", "negative")) -> None:
        self.labels = {label.lower() for label in labels}

    def __call__(self, response: str, gold: str) -> bool:
        if gold.lower() not in self.labels:
            raise ConfigError(f"gold label {gold!r} is not one of task_scorer.labels={sorted(self.labels)}; "
                              "set task_scorer.labels to the task's labels")
        words = [w.strip(string.punctuation).lower() for w in response.split()]
        return bool(words) and words[0] == gold.lower() and not (self.labels - {gold.lower()}) & set(words)


AG_NEWS_PATTERNS = {"World": r"world", "Sports": r"sports", "Business": r"business",
                    "Sci/Tech": r"sci/tech|sci|technology|tech"}


class KeywordLabel:
    """AG-News-style: correct iff the gold class's pattern (case-insensitive regex) occurs anywhere in the response.

    This is the authors' rule; note that it credits a response naming several classes for each of them.
    """

    def __init__(self, patterns: dict[str, str] | None = None) -> None:
        patterns = AG_NEWS_PATTERNS if patterns is None else patterns
        self.patterns = {label.lower(): re.compile(p, re.IGNORECASE) for label, p in patterns.items()}

    def __call__(self, response: str, gold: str) -> bool:
        pattern = self.patterns.get(gold.lower())
        if pattern is None:
            raise ConfigError(f"gold label {gold!r} has no pattern in task_scorer.patterns "
                              f"(classes: {sorted(self.patterns)}); add one")
        return pattern.search(response) is not None


_NUMBER = r"-?\d[\d,]*(?:\.\d+)?"
_MARKED = re.compile(rf"(?:####|the final answer is)\s*\$?\s*({_NUMBER})", re.IGNORECASE)


def final_number(text: str) -> float | None:
    """The number after "####" or "The final answer is", else the last number in ``text`` (commas dropped)."""
    marked = _MARKED.search(text)
    numbers = [marked.group(1)] if marked else re.findall(_NUMBER, text)
    return float(numbers[-1].replace(",", "")) if numbers else None


class FinalNumber:
    """GSM8K-style: the final number of the response equals the gold one (itself a number or a "#### n" solution)."""

    def __init__(self, tolerance: float = 1e-6) -> None:
        self.tolerance = tolerance

    def __call__(self, response: str, gold: str) -> bool:
        expected = final_number(gold)
        if expected is None:
            raise ConfigError(f"gold answer {gold!r} contains no number; FinalNumber needs numeric gold answers")
        got = final_number(response)
        return got is not None and abs(got - expected) <= self.tolerance
