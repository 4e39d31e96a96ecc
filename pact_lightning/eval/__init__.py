"""Evaluation: generation, harmfulness judges, task scorers, the Evaluator and the safety-token diagnostics."""

from pact_lightning.eval.generation import generate
from pact_lightning.eval.judges import (REFUSAL_MARKERS, ClassifierJudge, GuardJudge, KeywordJudge, parse_guard_output,
                                        refused)
from pact_lightning.eval.runner import Evaluator

__all__ = ["REFUSAL_MARKERS", "ClassifierJudge", "Evaluator", "GuardJudge", "KeywordJudge", "generate",
           "parse_guard_output", "refused"]
