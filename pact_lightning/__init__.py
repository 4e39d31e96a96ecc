"""PACT on Lightning + Hydra: keep an aligned LLM's safety-token confidence while fine-tuning it."""

import os

# torch's OpenMP threads spin while they wait for work (OMP_WAIT_POLICY=ACTIVE by default). When another process
# competes for the cores (a second run, a test suite), the spinning threads starve each other: on the 2-core machine a
# SmolLM2 generation took 90-110 s instead of 6 s with one other busy process. PASSIVE threads sleep instead. It must be
# set before torch is imported; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Offline by default (`offline: true` in every app config). huggingface_hub, transformers and datasets read these when
# they are imported, before any config is composed, so they are set here, first; a run's `offline` setting is applied
# again at its start (app.set_hub_offline), which is how offline=false turns the hub back on.
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"
