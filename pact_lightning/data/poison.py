"""The poison mix: n training examples, ⌊p·n⌋ of them harmful, drawn with the run's seed, recorded in a ledger.

This is the harmful fine-tuning attack of the Vaccine/Lisa/Booster protocol (docs/method.md §5), with a seeded draw
instead of "the first k rows" and a ledger of exactly what went in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from pact_lightning.data.types import Example
from pact_lightning.errors import ConfigError
from pact_lightning.schema import check


@dataclass(frozen=True)
class MixedExample:
    example: Example
    kind: str  # "benign" | "poison"


def poison_counts(num_samples: int, poison_ratio: float) -> tuple[int, int]:
    """(num_benign, num_poison) for n samples at ratio p."""
    check("data.poison_ratio", poison_ratio)  # 0 = benign only, 1 = harmful only
    check("data.num_samples", num_samples)
    num_poison = math.floor(poison_ratio * num_samples + 1e-9)
    if poison_ratio > 0 and num_poison == 0:
        raise ConfigError(f"data.poison_ratio={poison_ratio} of data.num_samples={num_samples} is "
                          f"{poison_ratio * num_samples:g} examples, which rounds down to no poison at all; raise "
                          f"data.num_samples to at least {math.ceil(1 / poison_ratio)} or set data.poison_ratio=0")
    return num_samples - num_poison, num_poison


def mix(benign: list[Example], harmful: list[Example], num_samples: int, poison_ratio: float, seed: int,
        benign_name: str = "data.benign", harmful_name: str = "data.harmful") -> list[MixedExample]:
    """Draw the benign and poison examples without replacement and shuffle them together."""
    num_benign, num_poison = poison_counts(num_samples, poison_ratio)
    for have, want, name in ((benign, num_benign, benign_name), (harmful, num_poison, harmful_name)):
        if want > len(have):
            raise ConfigError(f"data.num_samples={num_samples} at data.poison_ratio={poison_ratio} needs {want} rows "
                              f"from {name} but it has {len(have)}; lower data.num_samples or use a larger source")
    rng = random.Random(seed)
    drawn = [MixedExample(e, "benign") for e in rng.sample(benign, num_benign)]
    drawn += [MixedExample(e, "poison") for e in rng.sample(harmful, num_poison)]
    rng.shuffle(drawn)
    return drawn


def ledger(mixed: list[MixedExample], **settings) -> dict:
    """The JSON record of a mix: counts, settings and per example its source, row id and kind."""
    return {"num_benign": sum(m.kind == "benign" for m in mixed), "num_poison": sum(m.kind == "poison" for m in mixed),
            **settings,
            "examples": [{"index": i, "source": m.example.source, "row": m.example.row, "kind": m.kind}
                         for i, m in enumerate(mixed)]}
