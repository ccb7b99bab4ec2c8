from typing import Annotated

from zenml import log_metadata, step
from zenml.types import HTMLString

from drugslm_core.config import DataSettings, SplitSettings, ValidationSettings
from drugslm_core.data.formatting import InstructionDataset, build_instruction_dataset
from drugslm_core.data.ingest import ingest_records
from drugslm_core.data.records import Quarantine, RecordBatch
from drugslm_core.data.splits import split_by_focus
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.loading import load_tokenizer
from drugslm_core.quality.gate import apply_quality_gate, enforce_accepted_share
from drugslm_core.quality.report import render_gate_report
from materializers import InstructionDatasetMaterializer, QuarantineMaterializer, RecordBatchMaterializer


@step(enable_cache=False, output_materializers=RecordBatchMaterializer)  # files may change under the same path
def ingest(settings: DataSettings) -> Annotated[RecordBatch, "raw_records"]:
    """Bundled leaflets plus the configured files, merged."""
    return ingest_records(settings)


@step(output_materializers={"accepted_records": RecordBatchMaterializer, "quarantine": QuarantineMaterializer})
def validate(
    records: RecordBatch, settings: ValidationSettings
) -> tuple[
    Annotated[RecordBatch, "accepted_records"],
    Annotated[Quarantine, "quarantine"],
    Annotated[HTMLString, "validation_report"],
]:
    """Great Expectations suite: failing records go to quarantine, each with its reasons."""
    gate = apply_quality_gate(records, settings)
    log_metadata(
        {"records_in": gate.records_in, "accepted": len(gate.accepted), "quarantined": len(gate.quarantine),
         "reasons": gate.quarantine.reason_counts()}
    )
    return gate.accepted, gate.quarantine, HTMLString(render_gate_report(gate))


@step
def quality_gate(
    accepted: RecordBatch, quarantine: Quarantine, settings: ValidationSettings
) -> Annotated[float, "accepted_share"]:
    """Fail the run when the accepted share is below ``validation.min_accepted_share``."""
    return enforce_accepted_share(len(accepted), quarantine, settings.min_accepted_share)


@step(output_materializers=InstructionDatasetMaterializer)
def build_dataset(
    accepted: RecordBatch, base: BaseModelRef, settings: DataSettings
) -> Annotated[InstructionDataset, "instruction_dataset"]:
    """Render question/answer pairs with the base model's chat template and the domain tag."""
    return build_instruction_dataset(
        accepted, load_tokenizer(base), settings.system_prompt, settings.domain_tag, base.sha256
    )


@step(output_materializers=InstructionDatasetMaterializer)
def split(
    dataset: InstructionDataset, settings: SplitSettings
) -> tuple[Annotated[InstructionDataset, "train_split"], Annotated[InstructionDataset, "eval_split"]]:
    """Train/eval by drug (focus): none appears on both sides."""
    train, evaluation = split_by_focus(dataset, settings.eval_fraction, settings.seed)
    return train, evaluation
