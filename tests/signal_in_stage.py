"""The train app (``python tests/signal_in_stage.py <overrides>``) that sends itself a signal when a stage begins.

PACT_TEST_SIGNAL_AT=<module>:<attribute>[.<attribute>] names the function that begins the stage (it is wrapped: the
first call sends PACT_TEST_SIGNAL, e.g. USR1, to this process, then runs the function); with PACT_TEST_SUBMITIT=<dir>
the process first installs submitit's own signal handlers, as a job that submitit starts does (its requeue handler
calls ``scontrol requeue`` and ``sys.exit(-1)``).
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
from pathlib import Path


def signal_at(target: str, signum: int) -> None:
    module_name, _, path = target.partition(":")
    owner = importlib.import_module(module_name)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    original = getattr(owner, name)
    sent = []

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        if not sent:
            sent.append(True)
            print(f"signal_in_stage: sending {signal.Signals(signum).name} at {target}", flush=True)
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def submitit_handlers(folder: Path) -> None:
    from submitit.core.utils import DelayedSubmission, JobPaths
    from submitit.slurm.slurm import SlurmJobEnvironment

    class Point:  # checkpointable, like hydra-submitit-launcher's launcher: submitit requeues it
        def __call__(self) -> None:
            pass

        def checkpoint(self) -> DelayedSubmission:
            return DelayedSubmission(self)

    delayed = DelayedSubmission(Point())
    delayed.set_timeout(60, 3)
    folder.mkdir(parents=True, exist_ok=True)
    env = SlurmJobEnvironment()
    env._handle_signals(JobPaths(folder, job_id=env.job_id), delayed)


if __name__ == "__main__":
    if os.environ.get("PACT_TEST_SUBMITIT"):
        submitit_handlers(Path(os.environ["PACT_TEST_SUBMITIT"]))
    signal_at(os.environ["PACT_TEST_SIGNAL_AT"], getattr(signal, "SIG" + os.environ.get("PACT_TEST_SIGNAL", "USR1")))
    from pact_lightning.train import main

    main()
