"""``python -m pact_lightning.bench [steps|generation] [options]``: the project's benchmarks, one entry point.

* ``steps`` (the default): time and peak memory of a training step per method and reference mode (``bench/steps.py``);
* ``generation``: batched vs one-prompt-at-a-time generation for the evaluation (``bench/generation.py``).

``--help`` after the name lists each one's options.
"""

from __future__ import annotations

import sys

BENCHMARKS = ("steps", "generation")


def main(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv.pop(0) if argv and argv[0] in BENCHMARKS else "steps"
    if name == "generation":
        from pact_lightning.bench import generation

        return generation.main(argv)
    from pact_lightning.bench import steps

    return steps.main(argv)
