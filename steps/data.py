"""Data steps: ingest → clean → validate → quality gate → build dataset → profile, and split."""

from typing import Annotated

from zenml import log_metadata, step
from zenml.types import HTMLString

from drugslm_core.config import CleaningSettings, DataSettings, SplitSettings, ValidationSettings
from drugslm_core.data.documents import DocumentBatch, RawPayloadBatch
from drugslm_core.data.formatting import InstructionDataset, build_instruction_dataset
from drugslm_core.data.ingest import ingest_sources
from drugslm_core.data.records import Quarantine, RecordBatch
from drugslm_core.data.splits import split_three_ways
from drugslm_core.data.transform import CleaningStats, clean_records
from drugslm_core.modeling.base_model import BaseModelRef
from drugslm_core.modeling.loading import load_tokenizer
from drugslm_core.quality.gate import ValidationResult, apply_quality_gate, enforce_accepted_share
from drugslm_core.quality.profile import dataset_profile, render_data_quality_report
from materializers import (
    CleaningStatsMaterializer,
    DocumentBatchMaterializer,
    InstructionDatasetMaterializer,
    QuarantineMaterializer,
    RawPayloadBatchMaterializer,
    RecordBatchMaterializer,
    ValidationResultMaterializer,
)


@step(  # sources may change under the same path or URL: never cached
    enable_cache=False,
    output_materializers={
        "raw_records": RecordBatchMaterializer, "source_documents": DocumentBatchMaterializer,
        "raw_payloads": RawPayloadBatchMaterializer,
    },
)
def ingest(settings: DataSettings) -> tuple[
    Annotated[RecordBatch, "raw_records"],
    Annotated[DocumentBatch, "source_documents"],
    Annotated[RawPayloadBatch, "raw_payloads"],
]:
    """Bundled leaflets, configured files and PDFs, enabled connectors; raw HTTP bodies kept."""
    result = ingest_sources(settings)
    log_metadata({
        "sources": [s.model_dump() for s in result.sources],
        "files": {c.source: {"held": c.held, "unit": c.unit, "format": c.format, "note": c.note} for c in result.files},
        "unhandled_files": result.unhandled, "skipped_os_litter": result.skipped, "ids_qualified": result.renamed_ids,
    })
    return result.records, result.documents, result.payloads


@step(
    output_materializers={
        "cleaned_records": RecordBatchMaterializer, "duplicates": QuarantineMaterializer,
        "cleaning_report": CleaningStatsMaterializer,
    }
)
def clean(records: RecordBatch, documents: DocumentBatch, settings: CleaningSettings) -> tuple[
    Annotated[RecordBatch, "cleaned_records"],
    Annotated[Quarantine, "duplicates"],
    Annotated[CleaningStats, "cleaning_report"],
]:
    """Documents → records (chunked), normalise, strip HTML/boilerplate, scrub PII; duplicates quarantined."""
    result = clean_records(records, documents, settings)
    return result.records, result.duplicates, result.stats


@step(
    output_materializers={
        "accepted_records": RecordBatchMaterializer, "quarantine": QuarantineMaterializer,
        "validation_report": ValidationResultMaterializer,
    }
)
def validate(records: RecordBatch, duplicates: Quarantine, settings: ValidationSettings) -> tuple[
    Annotated[RecordBatch, "accepted_records"],
    Annotated[Quarantine, "quarantine"],
    Annotated[ValidationResult, "validation_report"],
]:
    """Great Expectations suite: failing records (and the duplicates) go to quarantine, each with its reasons."""
    gate = apply_quality_gate(records, settings, upstream=duplicates)
    log_metadata(
        {"records_in": gate.records_in, "accepted": len(gate.accepted), "quarantined": len(gate.quarantine),
         "reasons": gate.quarantine.reason_counts(),
         "per_file": {t.source: {"held": t.held, "accepted": t.accepted, "quarantined": t.quarantined}
                      for t in gate.quarantine.per_file}}
    )
    return gate.accepted, gate.quarantine, gate.summary()


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


@step
def profile_dataset(dataset: InstructionDataset) -> Annotated[HTMLString, "data_quality_report"]:
    """Evidently data-quality report of the built dataset (lengths, duplicates, empty shares)."""
    log_metadata({"profile": dataset_profile(dataset)})
    return HTMLString(render_data_quality_report(dataset))


# One materializer per named output: given a single class, ZenML 0.98 builds the outputs
# from a set, so their order (and the step's cache key) changed from process to process.
@step(output_materializers={name: InstructionDatasetMaterializer
                            for name in ("train_split", "validation_split", "eval_split")})
def split(
    dataset: InstructionDataset, settings: SplitSettings
) -> tuple[
    Annotated[InstructionDataset, "train_split"],
    Annotated[InstructionDataset, "validation_split"],
    Annotated[InstructionDataset, "eval_split"],
]:
    """Train / validation / eval by drug (focus): no drug appears in two of them."""
    train, validation, evaluation = split_three_ways(dataset, settings)
    return train, validation, evaluation
