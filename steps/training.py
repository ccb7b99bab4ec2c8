from pathlib import Path
from typing import Annotated

from zenml import step
from zenml.client import Client

from drugslm_core.config import TrainingSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.checkpoints import CheckpointStore
from drugslm_core.modeling.launch import TrainingJob, checkpoint_uri, run_training
from drugslm_core.modeling.training import TrainingOutcome
from drugslm_core.registry.mlflow_registry import log_training
from materializers import TrainingOutcomeMaterializer


@step(experiment_tracker=True, output_materializers=TrainingOutcomeMaterializer)
def finetune(
    train: InstructionDataset, validation: InstructionDataset, base: BaseModelRef, settings: TrainingSettings
) -> Annotated[TrainingOutcome, "adapter"]:
    """QLoRA / LoRA / full fine-tune (``settings.mode``) with packing; checkpoints in the artifact store."""
    import atexit
    import shutil
    import tempfile

    store = Client().active_stack.artifact_store
    # Remote stores (S3, GCS, Azure) expose their fsspec filesystem, credentials included;
    # the local store is a plain folder.
    checkpoints = CheckpointStore(checkpoint_uri(store.path, train, base, settings), getattr(store, "filesystem", None))
    work = Path(tempfile.mkdtemp(prefix="drugslm-train-"))
    # The materializer copies the adapter out of `work` after this function returns (after
    # ZenML's step hooks, too): remove it when the process ends, not here.
    atexit.register(shutil.rmtree, work, True)
    job = TrainingJob(train=train, validation=validation, base=base, settings=settings, output_dir=work / "out",
                      checkpoints=checkpoints, report_to="mlflow")
    outcome = run_training(job, work / "job")
    log_training(outcome)
    return outcome
