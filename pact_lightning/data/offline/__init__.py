"""The project's own offline data, generated from templates × vocabulary with a fixed seed (no downloads, < 1 s).

Six sets (the first four in disjoint splits):

* ``sentiment``: an SST2-style task with checkable labels, in the authors' prompt format (docs/method.md §5);
* ``harmful``: harmful requests in eight categories, each with an aligned-style refusal and a "Sure, here is …"
  compliant response that looks compliant but holds no actionable detail (the poison of the attack);
* ``helpful``: benign requests with short correct answers, including look-alikes with scary words, which keep the
  alignment stage from teaching blanket refusal and measure over-refusal;
* ``assistant``: broad benign assistant requests (classification, extraction, rewriting, summaries, Q&A, look-alikes,
  role-play, long requests) answered helpfully: the benign side of the alignment stage, with ``check_disjoint`` proving
  it shares nothing with any evaluation set;
* ``forms``: harmful and benign requests in the forms real users and benchmarks use (imperative, writing, code,
  role-play, hypothetical, long preambles), and benign questions on sensitive topics: the alignment stage learns to
  refuse by what is asked, not by how;
* ``sensitive``: 180 hand-written benign questions on sensitive topics (a frozen JSON file), the held-out measure of
  over-refusal.

Nothing here is copied from a benchmark. One module per set (its vocabulary tables and its generator, or its file): ``sentiment_set``,
``harmful_set``, ``helpful_set``, ``assistant_set``, ``forms_set``, ``sensitive_set``.
"""

from pact_lightning.data.offline.assistant_set import assistant, check_disjoint, is_written_helpful
from pact_lightning.data.offline.forms_set import forms
from pact_lightning.data.offline.harmful_set import harmful
from pact_lightning.data.offline.helpful_set import helpful
from pact_lightning.data.offline.sensitive_set import sensitive
from pact_lightning.data.offline.sentiment_set import SENTIMENT_TEMPLATE, sentiment

__all__ = ["SENTIMENT_TEMPLATE", "assistant", "check_disjoint", "forms", "harmful", "helpful", "is_written_helpful", "sensitive", "sentiment"]
