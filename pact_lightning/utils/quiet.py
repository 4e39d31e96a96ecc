"""Messages of the libraries a run uses that tell the user nothing they can act on, kept out of the run's log."""

from __future__ import annotations

import logging
import warnings


class _DropMessages(logging.Filter):
    def __init__(self, *starts: str) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def known_noise() -> None:
    """Lightning's advertisement for its litlogger, at every Trainer; transformers' FutureWarning on
    ``is_gradient_checkpointing``, which peft's get_peft_model reads (the project reads is_activation_checkpointing).
    Idempotent: one filter per logger."""
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    tip = ("💡 Tip: For seamless cloud logging",)
    for name, starts in (("lightning.pytorch.utilities.rank_zero", tip), ("lightning.fabric.utilities.rank_zero", tip)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(*starts))
