"""The retraining decision: which conditions hold, and the one-line reason recorded on the runs."""

from __future__ import annotations

from pydantic import BaseModel, Field

from drugslm_core.config import MonitoringSettings
from drugslm_core.monitoring.drift import DriftScores
from drugslm_core.monitoring.knowledge_base import KnowledgeBaseDrift


class TriggerDecision(BaseModel):
    retrain: bool
    reasons: list[str] = Field(default_factory=list)
    """Why a retraining starts (empty: it does not)."""
    checked: list[str] = Field(default_factory=list)
    """Every condition looked at, with its value: the report says why nothing ran."""

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "no trigger: " + "; ".join(self.checked)


def decide(
    drift: DriftScores | None,
    knowledge_base: KnowledgeBaseDrift | None,
    new_records: int,
    feedback_rows: int,
    settings: MonitoringSettings,
) -> TriggerDecision:
    reasons: list[str] = []
    checked: list[str] = []
    if drift is None:
        checked.append("no current questions: drift not measured")
    elif not drift.decided:
        checked.append(f"drift not decided ({drift.current_rows} current questions < min_rows {settings.min_rows})")
    else:
        found = drift.reasons(settings.min_drifted_descriptors)
        checked.append(
            f"text drift AUC {drift.text_drift_score:.3f}, embedding drift AUC {drift.embedding_drift_score:.3f}, "
            f"drifted descriptors {drift.drifted_descriptors or 'none'}, "
            f"novel questions {drift.novel_share:.0%} (Fisher p={drift.novelty_p_value:.2g})"
        )
        if found and settings.retrain_on_drift:
            reasons.extend(found)
    if knowledge_base is None:
        checked.append("no current leaflets: knowledge base not compared")
    else:
        checked.append(knowledge_base.summary())
        if knowledge_base.changes and settings.retrain_on_knowledge_base_change:
            reasons.append("knowledge-base change: " + knowledge_base.summary())
    checked.append(f"{new_records} new accepted records (threshold {settings.min_new_records})")
    if new_records >= settings.min_new_records:
        reasons.append(f"{new_records} new accepted records (>= {settings.min_new_records})")
    checked.append(f"{feedback_rows} rated feedback rows (threshold {settings.min_feedback_rows})")
    if feedback_rows >= settings.min_feedback_rows:
        reasons.append(f"{feedback_rows} rated feedback rows (>= {settings.min_feedback_rows})")
    return TriggerDecision(retrain=bool(reasons), reasons=reasons, checked=checked)
