"""The evaluate step's MLflow side: fetch @champion, evaluate the candidate against it, log the results.

The measuring and the gate are pure (``evaluation.candidate``); this thin function does the
registry I/O around them. The champion's adapter is downloaded to a temporary folder that is
removed once it has been measured.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from drugslm_core.config import EvaluationSettings, RegistrySettings, RetrievalSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.evaluation.candidate import CandidateEvaluation, evaluate_candidate
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.loading import find_registered_adapter
from drugslm_core.registry.tracking import log_evaluation
from drugslm_core.retrieval.search import Retriever


def evaluate_against_champion(
    outcome: TrainingOutcome,
    eval_split: InstructionDataset,
    settings: EvaluationSettings,
    registry: RegistrySettings,
    retriever: Retriever | None = None,
    retrieval: RetrievalSettings | None = None,
) -> CandidateEvaluation:
    """Base vs tuned vs the registered champion (if any), the gate's decision and the report, logged
    to the active MLflow run."""
    with tempfile.TemporaryDirectory(prefix="drugslm-champion-") as download_dir:
        champion = find_registered_adapter(registry.model_name, registry.champion_alias, Path(download_dir))
        candidate = evaluate_candidate(outcome, eval_split, settings, registry, champion, retriever, retrieval)
    log_evaluation(candidate.result, candidate.report_html)
    return candidate
