"""Feedback on a served request's trace (``POST /v1/feedback``).

Feedback is an MLflow assessment on the request's trace (``mlflow.log_feedback``): name
``rating``, value ``up``/``down``, source HUMAN with the reviewer's role as source id, the
reason category and role in its metadata. A correction is logged as an **expectation**
(``mlflow.log_expectation``, name ``expected_answer``), not folded into the rating's rationale:
expectations are MLflow's ground truth of a trace — what ``mlflow.genai`` evaluation datasets
and scorers read as the expected answer — which is exactly what a reviewer's correction is and
what the next fine-tune (issue 18b) turns into a candidate record. The latest rating and the
latest correction of a trace win.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RATING = "rating"
CORRECTION = "expected_answer"


class FeedbackIn(BaseModel):
    """The body of ``POST /v1/feedback``."""

    model_config = ConfigDict(extra="forbid")
    trace_id: str = Field(min_length=1, max_length=128)
    rating: Literal["up", "down"]
    correction: str | None = Field(default=None, max_length=8000)
    reason: Literal["wrong_dose", "wrong_drug", "missing_warning", "unclear", "other"] | None = None
    reviewer_role: Literal["pharmacist", "physician", "patient", "other"]


class TraceNotFound(LookupError):
    pass


def trace_experiment_id(trace_id: str) -> str:
    """The experiment of a stored trace; ``TraceNotFound`` when the store has no such trace."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracing.client import TracingClient

    try:
        info = TracingClient().get_trace_info(trace_id)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise TraceNotFound(trace_id) from error
        raise
    return str(info.experiment_id)


def attach_feedback(feedback: FeedbackIn, correction: str | None = None) -> list[str]:
    """Log ``feedback`` on its trace (the correction as given, or ``correction`` — e.g. PII-scrubbed);
    the ids of the assessments written."""
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType

    source = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id=feedback.reviewer_role)
    metadata = {"reviewer_role": feedback.reviewer_role, **({"reason": feedback.reason} if feedback.reason else {})}
    written: list[str | None] = [mlflow.log_feedback(trace_id=feedback.trace_id, name=RATING, value=feedback.rating, source=source,
                                   metadata=metadata).assessment_id]
    text = correction if correction is not None else feedback.correction
    if text and text.strip():
        written.append(mlflow.log_expectation(trace_id=feedback.trace_id, name=CORRECTION, value=text,
                                              source=source, metadata=metadata).assessment_id)
    return [assessment_id for assessment_id in written if assessment_id is not None]
