"""PACT on Lightning + Hydra: keep an aligned LLM's safety-token confidence while fine-tuning it."""

__version__ = "0.1.0"
