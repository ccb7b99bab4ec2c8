"""A trained LoRA adapter: its files, its training summary and a loss-curve image."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from zenml.enums import ArtifactType, VisualizationType
from zenml.io import fileio
from zenml.materializers.base_materializer import BaseMaterializer
from zenml.utils import io_utils

from drugslm_core.evaluation.plots import loss_curve_png
from drugslm_core.modeling.training import TrainingOutcome

SUMMARY = "training_outcome.json"
ADAPTER = "adapter"


class TrainingOutcomeMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (TrainingOutcome,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, data: TrainingOutcome) -> None:
        io_utils.copy_dir(data.adapter_dir, os.path.join(self.uri, ADAPTER))
        with fileio.open(os.path.join(self.uri, SUMMARY), "w") as handle:
            handle.write(data.model_dump_json(indent=2))

    def load(self, data_type: type[Any]) -> TrainingOutcome:
        with fileio.open(os.path.join(self.uri, SUMMARY), "r") as handle:
            outcome = TrainingOutcome.model_validate_json(handle.read())
        with self.get_temporary_directory(delete_at_exit=False) as local:
            io_utils.copy_dir(os.path.join(self.uri, ADAPTER), local)
        return outcome.model_copy(update={"adapter_dir": local})

    def save_visualizations(self, data: TrainingOutcome) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "loss_curve.png")
        with fileio.open(path, "wb") as handle:
            handle.write(loss_curve_png(data.loss_history))
        return {path.replace("\\", "/"): VisualizationType.IMAGE}

    def extract_metadata(self, data: TrainingOutcome) -> dict[str, Any]:
        return {
            "steps": data.steps,
            "train_loss": data.train_loss,
            "trainable_parameters": data.trainable_parameters,
            "base_model": data.base_model.name,
            "base_model_sha256": data.base_model.sha256,
            "runtime_s": data.runtime_s,
        }
