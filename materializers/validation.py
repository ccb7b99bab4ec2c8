"""The gate's verdict and the cleaning counts: JSON (exact round trip) plus an HTML page."""

from __future__ import annotations

from typing import Any, ClassVar

from drugslm_core.data.transform import CleaningStats
from drugslm_core.quality.gate import ValidationResult
from drugslm_core.quality.report import render_cleaning_report, render_gate_report
from materializers.records import _PreviewMaterializer


class ValidationResultMaterializer(_PreviewMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (ValidationResult,)

    def render(self, data: ValidationResult) -> str:
        return render_gate_report(data)

    def extract_metadata(self, data: ValidationResult) -> dict[str, Any]:
        return {
            "records_in": data.records_in, "accepted": data.accepted, "quarantined": len(data.quarantine),
            "accepted_share": round(data.accepted_share, 4), "passed": data.passed,
            "reasons": data.quarantine.reason_counts(),
        }


class CleaningStatsMaterializer(_PreviewMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (CleaningStats,)

    def render(self, data: CleaningStats) -> str:
        return render_cleaning_report(data)

    def extract_metadata(self, data: CleaningStats) -> dict[str, Any]:
        return {
            "records_in": data.records_in, "records_out": data.records_out, "duplicates_exact": data.duplicates_exact,
            "duplicates_near": data.duplicates_near, "html_stripped": data.html_stripped, "pii": data.pii,
            "chunks_added": data.from_documents.chunks_added,
        }
