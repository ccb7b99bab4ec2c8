"""How drugslm's artifact types are stored in the artifact store and shown in the dashboard."""

from materializers.records import (
    InstructionDatasetMaterializer,
    QuarantineMaterializer,
    RecordBatchMaterializer,
)
from materializers.adapter import TrainingOutcomeMaterializer

__all__ = [
    "InstructionDatasetMaterializer",
    "QuarantineMaterializer",
    "RecordBatchMaterializer",
    "TrainingOutcomeMaterializer",
]
