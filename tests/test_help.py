"""`--help` of every app opens with what the app does (hydra.help), not Hydra's generic line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("app, words", [("train", "Fine-tunes a safety-aligned chat model"),
                                        ("evaluate", "Evaluates a model without training it"),
                                        ("align", "Runs the alignment stage alone"),
                                        ("safety_tokens", "Selects the safety tokens S")])
def test_help_describes_the_app(app, words):
    proc = subprocess.run([sys.executable, "-m", f"pact_lightning.{app}", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    head = proc.stdout.split("== Configuration groups ==")[0]
    assert head.startswith(f"python -m pact_lightning.{app} [group=option ...] [key=value ...]")
    assert " ".join(head.split()).count(words) == 1 and "powered by Hydra" not in proc.stdout
