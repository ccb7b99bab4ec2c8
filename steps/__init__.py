"""Thin ZenML steps: each reads its inputs, calls drugslm_core, returns typed outputs."""

from steps.data import build_dataset, ingest, quality_gate, split, validate
from steps.evaluation import evaluate
from steps.model import base_model
from steps.registry import register
from steps.training import finetune

__all__ = [
    "base_model", "build_dataset", "evaluate", "finetune", "ingest",
    "quality_gate", "register", "split", "validate",
]
