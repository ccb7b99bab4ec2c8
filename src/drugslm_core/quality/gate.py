"""The Great Expectations gate between ingestion and the dataset.

The suite is built from :class:`ValidationSettings` (length bounds, and a ``mostly``
success threshold per expectation); every failing row goes to the quarantine with
one reason per failed expectation, the rest is accepted. Records already quarantined
upstream (duplicates found by the clean step) are merged in, so
``len(accepted) + len(quarantine) == records in`` covers the whole data flow; it is
checked. :func:`enforce_accepted_share` fails the run when too little passes.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict

from pydantic import BaseModel

from drugslm_core.config import ValidationSettings
from drugslm_core.data.records import FileTally, Quarantine, QuarantinedRecord, RecordBatch

logger = logging.getLogger(__name__)


class ExpectationOutcome(BaseModel):
    expectation: str
    column: str
    success: bool
    unexpected_count: int
    description: str


class ValidationResult(BaseModel):
    """What the gate decided, without the accepted records: the artifact behind the HTML report."""

    records_in: int
    accepted: int
    outcomes: list[ExpectationOutcome]
    quarantine: Quarantine

    @property
    def accepted_share(self) -> float:
        return self.accepted / self.records_in if self.records_in else 0.0

    @property
    def passed(self) -> bool:
        return all(o.success for o in self.outcomes)


class GateResult(BaseModel):
    accepted: RecordBatch
    quarantine: Quarantine
    outcomes: list[ExpectationOutcome]
    records_in: int

    @property
    def accepted_share(self) -> float:
        return len(self.accepted) / self.records_in if self.records_in else 0.0

    def summary(self) -> ValidationResult:
        return ValidationResult(
            records_in=self.records_in, accepted=len(self.accepted), outcomes=self.outcomes, quarantine=self.quarantine
        )


class QualityGateError(RuntimeError):
    """Too few records passed the gate."""


def _build_suite(gx, settings: ValidationSettings):  # type: ignore[no-untyped-def]
    """(expectation, reason template) pairs; the reason names the record's field."""
    e = gx.expectations
    lengths = (
        ("question", settings.min_question_chars, settings.max_question_chars),
        ("answer", settings.min_answer_chars, settings.max_answer_chars),
    )
    pairs = [
        (e.ExpectColumnValuesToNotBeNull(column="id"), "missing: field 'id' is absent"),
        (e.ExpectColumnValuesToNotBeNull(column="question"), "missing: field 'question' is absent"),
        (e.ExpectColumnValuesToNotBeNull(column="answer"), "missing: field 'answer' is absent"),
        (e.ExpectColumnValuesToMatchRegex(column="question", regex=r"\S"), "empty: field 'question' is blank"),
        (e.ExpectColumnValuesToMatchRegex(column="answer", regex=r"\S"), "empty: field 'answer' is blank"),
        (e.ExpectColumnValuesToBeUnique(column="id"), "duplicate_id: field 'id' is not unique"),
        (
            e.ExpectColumnValuesToNotMatchRegex(column="answer", regex=r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?\s*>"),
            "markup: field 'answer' still contains HTML tags",
        ),
    ]
    for column, low, high in lengths:
        pairs.append(
            (
                e.ExpectColumnValueLengthsToBeBetween(column=column, min_value=low, max_value=high),
                f"length: field '{column}' length outside [{low}, {high}] characters",
            )
        )
    known = {f"{expectation.expectation_type}:{expectation.column}" for expectation, _ in pairs}
    unknown = set(settings.mostly) - known
    if unknown:
        raise ValueError(f"validation.mostly names unknown expectations {sorted(unknown)}; known: {sorted(known)}")
    for expectation, _ in pairs:
        share = settings.mostly.get(f"{expectation.expectation_type}:{expectation.column}")
        if share is not None:
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"validation.mostly values must be in [0, 1], got {share}")
            expectation.mostly = share
    return pairs


def apply_quality_gate(
    batch: RecordBatch, settings: ValidationSettings, upstream: Quarantine | None = None
) -> GateResult:
    """Validate every record with a GX 1.x suite; split into accepted and quarantined.

    ``upstream`` (records already rejected, e.g. duplicates) is put first in the quarantine
    and counted in ``records_in``. Records a reader rejected (``record.rejected``: ragged or
    unparsable rows, wrong types) are quarantined with that reason without being validated.
    For every file in ``batch.files``: held = accepted + quarantined, checked and kept in
    ``quarantine.per_file``.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import pandas as pd

    checked = [i for i, r in enumerate(batch.records) if r.rejected is None]
    frame = pd.DataFrame(
        [{"id": batch.records[i].id, "question": batch.records[i].question, "answer": batch.records[i].answer}
         for i in checked],
        columns=["id", "question", "answer"],
    )
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("records").add_dataframe_asset("batch")
    definition = asset.add_batch_definition_whole_dataframe("all")
    pairs = _build_suite(gx, settings)
    suite = context.suites.add(gx.ExpectationSuite(name="qa_records"))
    reason_by_type_column = {}
    for expectation, reason in pairs:
        suite.add_expectation(expectation)
        reason_by_type_column[(expectation.expectation_type, expectation.column)] = reason

    result = definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite, result_format={"result_format": "COMPLETE"}
    )

    reasons: dict[int, list[str]] = defaultdict(list)
    outcomes = []
    for item in result.results:
        config = item.expectation_config
        if config is None:  # GX fills it for every expectation of a suite; say so if a release does not
            raise RuntimeError(
                "great_expectations returned a validation result without its expectation_config: "
                "the quality gate needs its expectation type and column"
            )
        column = config.kwargs["column"]
        reason = reason_by_type_column[(config.type, column)]
        rows = [checked[int(i)] for i in item.result.get("unexpected_index_list") or []]
        for row in rows:
            reasons[row].append(reason)
        outcomes.append(
            ExpectationOutcome(
                expectation=config.type,
                column=column,
                success=bool(item.success),
                unexpected_count=len(rows),
                description=reason.split(": ", 1)[1],
            )
        )

    for i, record in enumerate(batch.records):
        if record.rejected is not None:
            reasons[i].append(record.rejected)
    accepted = [r for i, r in enumerate(batch.records) if i not in reasons]
    earlier = list(upstream.items) if upstream else []
    quarantined = earlier + [
        QuarantinedRecord(record=batch.records[i], reasons=reasons[i]) for i in sorted(reasons)
    ]
    per_file = file_tallies(batch, accepted, quarantined)
    gate = GateResult(
        accepted=RecordBatch(records=accepted, files=batch.files),
        quarantine=Quarantine(items=quarantined, per_file=per_file),
        outcomes=outcomes,
        records_in=len(batch) + len(earlier),
    )
    if len(gate.accepted) + len(gate.quarantine) != gate.records_in:  # never silently lose a record
        raise AssertionError("quality gate lost records")
    logger.info(
        "Quality gate: %d in, %d accepted, %d quarantined %s",
        gate.records_in, len(gate.accepted), len(gate.quarantine), gate.quarantine.reason_counts(),
    )
    return gate


def file_tallies(
    batch: RecordBatch, accepted: list, quarantined: list[QuarantinedRecord]
) -> list[FileTally]:
    """Per file read: what it held, how many of its records were accepted and quarantined; the
    two must add up (a record lost or invented anywhere between reader and gate fails the run)."""
    if not batch.files:
        return []
    kept = Counter(r.source for r in accepted)
    rejected = Counter(item.record.source for item in quarantined)
    tallies = [
        FileTally(source=c.source, held=c.held, accepted=kept[c.source], quarantined=rejected[c.source])
        for c in batch.files
    ]
    wrong = [t for t in tallies if t.accepted + t.quarantined != t.held]
    if wrong:
        raise AssertionError(
            "records of these files were lost or invented: "
            + "; ".join(f"{t.source}: held {t.held}, accepted {t.accepted}, quarantined {t.quarantined}" for t in wrong)
        )
    return tallies


def enforce_accepted_share(accepted: int, quarantine: Quarantine, min_share: float) -> float:
    """The accepted share; raise :class:`QualityGateError` when it is below ``min_share``."""
    records_in = accepted + len(quarantine)
    share = accepted / records_in if records_in else 0.0
    if share < min_share:
        raise QualityGateError(
            f"only {accepted}/{records_in} records ({share:.1%}) passed the quality gate, below "
            f"validation.min_accepted_share={min_share:.0%}; quarantine reasons: {quarantine.reason_counts()}"
        )
    return share
