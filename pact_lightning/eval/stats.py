"""The uncertainty of the evaluation's numbers lives with the run record (pact_lightning/record/stats.py), which the
report reads without torch; this name is kept for the evaluation's own modules."""

from pact_lightning.record.stats import ALPHA, Z95, majority_rate, mcnemar_exact, paired_difference, wilson

__all__ = ["ALPHA", "Z95", "majority_rate", "mcnemar_exact", "paired_difference", "wilson"]
