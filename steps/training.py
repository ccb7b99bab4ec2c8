from pathlib import Path
from typing import Annotated

from zenml import step

from drugslm_core.config import TrainingSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.training import TrainingOutcome, finetune_qlora
from drugslm_core.registry.mlflow_registry import log_training
from materializers import TrainingOutcomeMaterializer


@step(experiment_tracker=True, output_materializers=TrainingOutcomeMaterializer)
def finetune(
    train: InstructionDataset, base: BaseModelRef, settings: TrainingSettings
) -> Annotated[TrainingOutcome, "adapter"]:
    """QLoRA: nf4 base with double quantization, LoRA on all linear layers, loss on answers only."""
    import tempfile

    outcome = finetune_qlora(train, base, settings, Path(tempfile.mkdtemp(prefix="drugslm-train-")))
    log_training(outcome)
    return outcome
