from typing import Annotated

from zenml import step
from zenml.client import Client

from drugslm_core.config import TrainingSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.launch import train_with_checkpoints
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.tracking import log_training
from materializers import TrainingOutcomeMaterializer


@step(experiment_tracker=True, output_materializers=TrainingOutcomeMaterializer)
def finetune(
    train: InstructionDataset, validation: InstructionDataset, base: BaseModelRef, settings: TrainingSettings
) -> Annotated[TrainingOutcome, "adapter"]:
    """QLoRA / LoRA / full fine-tune (``settings.mode``) with packing; checkpoints in the artifact store."""
    store = Client().active_stack.artifact_store
    # Remote stores (S3, GCS, Azure) expose their fsspec filesystem, credentials included;
    # the local store is a plain folder.
    outcome = train_with_checkpoints(train, validation, base, settings, store.path,
                                     getattr(store, "filesystem", None), report_to="mlflow")
    log_training(outcome)
    return outcome
