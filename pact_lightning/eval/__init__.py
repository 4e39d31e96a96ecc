"""Evaluation: what an answer is (answers.py), the rates of a set of answers (scoring.py), generation, harmfulness
judges, task scorers, the Evaluator (runner.py), the evaluation cache and the safety-token diagnostics.

Nothing is imported here, so that the report can use the torch-free modules (answers, scoring, stats) alone."""
