"""A run's record and the vocabulary of its numbers, without torch: what results.json holds (run.py), the rates and
how they read (metrics.py), their intervals and paired tests (stats.py). The report, the model card, the sweeper's
objective and the scripts read runs through here; training and the evaluate app write them through here."""

from pact_lightning.record.metrics import (CATEGORY_RATES, HEADLINE, LABELS, PREFIX, RATES, answers_text,
                                           detail_block, difference_text, paired_comparison, rate_text, rate_verdict,
                                           rate_with_interval, read_generations, tuning_of)
from pact_lightning.record.run import (FILE, HEAD, Alignment, CompareEntry, EvalSet, Evaluation, PairedDifference,
                                       RunRecord, TargetBias)

__all__ = ["CATEGORY_RATES", "FILE", "HEAD", "HEADLINE", "LABELS", "PREFIX", "RATES", "Alignment", "CompareEntry",
           "EvalSet", "Evaluation", "PairedDifference", "RunRecord", "TargetBias", "answers_text", "detail_block",
           "difference_text", "paired_comparison", "rate_text", "rate_verdict", "rate_with_interval", "read_generations", "tuning_of"]
