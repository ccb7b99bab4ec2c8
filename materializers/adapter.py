"""A trained model (LoRA adapter or full fine-tune, plus the merged export when asked for):
its files, its training summary and a loss-curve image."""

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
MERGED = "merged"


class TrainingOutcomeMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (TrainingOutcome,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.MODEL

    def save(self, data: TrainingOutcome) -> None:
        io_utils.copy_dir(data.adapter_dir, os.path.join(self.uri, ADAPTER))
        if data.merged_dir and data.merged_dir != data.adapter_dir:
            io_utils.copy_dir(data.merged_dir, os.path.join(self.uri, MERGED))
        with fileio.open(os.path.join(self.uri, SUMMARY), "w") as handle:
            handle.write(data.model_dump_json(indent=2))

    def load(self, data_type: type[Any]) -> TrainingOutcome:
        with fileio.open(os.path.join(self.uri, SUMMARY), "r") as handle:
            outcome = TrainingOutcome.model_validate_json(handle.read())
        with self.get_temporary_directory(delete_at_exit=False) as local:
            io_utils.copy_dir(os.path.join(self.uri, ADAPTER), local)
        update = {"adapter_dir": local}
        if outcome.merged_dir:
            if outcome.merged_dir == outcome.adapter_dir:
                update["merged_dir"] = local
            else:
                with self.get_temporary_directory(delete_at_exit=False) as merged:
                    io_utils.copy_dir(os.path.join(self.uri, MERGED), merged)
                update["merged_dir"] = merged
        return outcome.model_copy(update=update)

    def save_visualizations(self, data: TrainingOutcome) -> dict[str, VisualizationType]:
        path = os.path.join(self.uri, "loss_curve.png")
        with fileio.open(path, "wb") as handle:
            handle.write(loss_curve_png(data.loss_history, eval_history=data.eval_history, best_step=data.best_step))
        return {path.replace("\\", "/"): VisualizationType.IMAGE}

    def extract_metadata(self, data: TrainingOutcome) -> dict[str, Any]:
        metadata = {
            "steps": data.steps,
            "train_loss": data.train_loss,
            "trainable_parameters": data.trainable_parameters,
            "base_model": data.base_model.name,
            "base_model_sha256": data.base_model.sha256,
            "runtime_s": data.runtime_s,
            "mode": data.mode,
            "tokens_seen": data.tokens_seen,
            "resumed_from_step": data.resumed_from_step,
            "best_step": data.best_step,
            "best_eval_loss": data.best_eval_loss,
            "stopped_early": data.stopped_early,
        }
        return {key: value for key, value in metadata.items() if value is not None}
