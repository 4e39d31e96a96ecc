"""What the offline sets share: the seed of their generators and the split lookup."""

from __future__ import annotations

from pact_lightning.errors import ConfigError

SEED = 20240607


def split_of(splits: dict, split: str, what: str):
    """``splits[split]``, or a ConfigError naming the splits ``what`` has."""
    if split not in splits:
        raise ConfigError(f"offline {what} has no split {split!r}; use one of {sorted(splits)}")
    return splits[split]
