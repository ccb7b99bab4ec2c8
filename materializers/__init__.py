"""How drugslm's artifact types are stored in the artifact store and shown in the dashboard."""

from materializers.adapter import TrainingOutcomeMaterializer
from materializers.documents import DocumentBatchMaterializer, RawPayloadBatchMaterializer
from materializers.records import (
    InstructionDatasetMaterializer,
    QuarantineMaterializer,
    RecordBatchMaterializer,
)
from materializers.retrieval import RetrievalIndexMaterializer
from materializers.validation import CleaningStatsMaterializer, ValidationResultMaterializer

__all__ = [
    "CleaningStatsMaterializer",
    "DocumentBatchMaterializer",
    "InstructionDatasetMaterializer",
    "RawPayloadBatchMaterializer",
    "ValidationResultMaterializer",
    "QuarantineMaterializer",
    "RecordBatchMaterializer",
    "RetrievalIndexMaterializer",
    "TrainingOutcomeMaterializer",
]
