"""One monitoring pass over a reference and a current batch: drift, knowledge base, decision, HTML."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from drugslm_core.config import MonitoringSettings
from drugslm_core.monitoring.drift import DriftScores, Embedder, measure_drift, minilm_embedder, render_report
from drugslm_core.monitoring.knowledge_base import KnowledgeBaseDrift, compare
from drugslm_core.monitoring.reference import MonitoringData, new_pairs
from drugslm_core.monitoring.served import rated, read_feedback_export
from drugslm_core.monitoring.triggers import TriggerDecision, decide


class MonitoringResult(BaseModel):
    drift: DriftScores | None
    knowledge_base: KnowledgeBaseDrift | None
    new_records: int
    feedback_rows: int
    decision: TriggerDecision
    html: str = ""

    def metrics(self) -> dict[str, float]:
        out = {"new_records": float(self.new_records), "feedback_rows": float(self.feedback_rows),
               "retrain": float(self.decision.retrain)}
        if self.drift and self.drift.decided:
            out["text_drift_auc"] = float(self.drift.text_drift_score or 0)
            out["embedding_drift_auc"] = float(self.drift.embedding_drift_score or 0)
            out["drifted_descriptors"] = float(len(self.drift.drifted_descriptors))
            out["novel_share"] = float(self.drift.novel_share or 0)
            out["novelty_p_value"] = float(self.drift.novelty_p_value if self.drift.novelty_p_value is not None else 1)
            out.update({f"descriptor_p.{k}": v for k, v in self.drift.descriptor_p_values.items()})
        if self.knowledge_base:
            out.update({"kb_new": float(len(self.knowledge_base.new)), "kb_changed": float(len(self.knowledge_base.changed)),
                        "kb_removed": float(len(self.knowledge_base.removed)),
                        "kb_affected_questions": float(len(self.knowledge_base.affected_questions))})
        return out


def monitor_batches(
    reference: MonitoringData,
    current: MonitoringData,
    settings: MonitoringSettings,
    benchmark: list[dict],
    embed: Embedder | None = None,
    with_html: bool = True,
) -> MonitoringResult:
    """Current questions = the batch's plus the served ones (``settings.served_questions``)."""
    served = read_feedback_export(Path(settings.served_questions)) if settings.served_questions else []
    questions = current.questions + [r.question for r in served]
    drift = None
    knowledge_base = None
    if reference.questions:
        if questions:
            embed = embed or minilm_embedder()
            drift = measure_drift(reference.questions, questions, reference.drugs, settings,
                                  embed(reference.questions), embed(questions))
        if current.leaflets.leaflets:
            knowledge_base = compare(reference.leaflets, current.leaflets, benchmark)
    else:
        print(f"monitoring: {reference.label}: drift and knowledge base not compared")
    new_records = new_pairs(reference, current) if reference.questions else 0
    decision = decide(drift, knowledge_base, new_records, rated(served), settings)
    if not reference.questions:
        decision.checked.insert(0, f"reference: {reference.label}")
    html = ""
    if with_html:
        lines = [f"reference: {reference.label}, {len(reference.questions)} questions; current: {current.label}, "
                 f"{len(current.questions)} batch + {len(served)} served questions",
                 ("RETRAIN: " + decision.reason) if decision.retrain else decision.reason]
        if knowledge_base:
            lines.append(knowledge_base.summary())
            lines += [f"benchmark {q.id} ({q.drug}/{q.section}) has a changed source section" for q in knowledge_base.affected_questions]
        if drift is not None and drift.decided:
            html = render_report(reference.questions, questions, reference.drugs, settings, drift, lines)
        else:
            from html import escape

            html = "<!doctype html><html><body style='font-family:system-ui,sans-serif'><h1>drugslm monitoring</h1>" + \
                "".join(f"<p>{escape(line)}</p>" for line in lines) + "</body></html>"
    return MonitoringResult(drift=drift, knowledge_base=knowledge_base, new_records=new_records, feedback_rows=rated(served), decision=decision, html=html)
