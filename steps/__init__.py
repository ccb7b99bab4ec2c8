"""Thin ZenML steps: each reads its inputs, calls drugslm_core, returns typed outputs."""

from drugslm_ops import zenml_compat
from steps.data import build_dataset, clean, ingest, profile_dataset, quality_gate, split, validate
from steps.evaluation import evaluate
from steps.model import base_model
from steps.registry import register, rollback_champion
from steps.training import finetune

# Explicitly, here: a step pod imports this package before it runs a step (see the module).
zenml_compat.install()

__all__ = [
    "base_model", "build_dataset", "clean", "evaluate", "finetune", "ingest",
    "profile_dataset", "quality_gate", "register", "rollback_champion", "split", "validate",
]
