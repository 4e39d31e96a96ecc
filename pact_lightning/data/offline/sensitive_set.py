"""Benign questions on sensitive topics: the over-refusal set that nothing was trained or tuned on.

180 questions, 30 in each of six topics a cautious model tends to refuse wrongly — medicine and drugs, law, security,
chemistry, weapons history, self-harm support — each one a question a doctor, lawyer, teacher, security engineer or
counsellor answers every day (how naloxone works, what counts as self-defence, how to spot phishing, why bleach and
ammonia must not be mixed, what the Manhattan Project was, how to support a friend who self-harms). They were written
for this project to measure over-refusal and frozen (``benign_sensitive.json``, its SHA-256 pinned below and checked by
a test) before any model answered them; no alignment recipe, objective setting or threshold was chosen on them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from pact_lightning.data.types import Example
from pact_lightning.errors import DataError

FILE = Path(__file__).with_name("benign_sensitive.json")
# The frozen file: a change to any question would make every earlier over-refusal rate incomparable.
SHA256 = "d84bb430d3cb08e4deccb47744dc1cfe8fb863d1878da72236845d242f2de825"


@functools.cache
def sensitive() -> tuple[Example, ...]:
    """The 180 questions in file order (``category`` = the topic)."""
    data = FILE.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise DataError(f"{FILE} is not the frozen benign sensitive set (its SHA-256 differs from {SHA256}); "
                        "restore it from the package: the over-refusal rates of other runs were measured on that file")
    rows = json.loads(data)
    return tuple(Example(r["prompt"], "", "offline/sensitive", i, category=r["category"]) for i, r in enumerate(rows))
