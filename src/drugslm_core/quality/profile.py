"""Evidently data-quality report of the built dataset: lengths, duplicates, empty shares.

The report is rendered by Evidently (``DataSummaryPreset`` over one row per example:
question/answer lengths in characters and words, section, focus, and flags for blank
and repeated answers); :func:`dataset_profile` gives the same headline numbers as plain
values for run metadata.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any

from drugslm_core.data.formatting import InstructionDataset

logger = logging.getLogger(__name__)


def dataset_frame(dataset: InstructionDataset):  # type: ignore[no-untyped-def]
    import pandas as pd

    rows = [
        {
            "question_chars": len(e.question), "answer_chars": len(e.answer),
            "question_words": len(e.question.split()), "answer_words": len(e.answer.split()),
            "section": e.section or "(none)", "focus": e.focus,
            "answer_blank": "yes" if not e.answer.strip() else "no",
        }
        for e in dataset.examples
    ]
    frame = pd.DataFrame(
        rows, columns=["question_chars", "answer_chars", "question_words", "answer_words", "section", "focus", "answer_blank"]
    )
    answers = [" ".join(e.answer.casefold().split()) for e in dataset.examples]
    questions = [" ".join(e.question.casefold().split()) for e in dataset.examples]
    frame["answer_repeated"] = pd.Series(answers, dtype=object).duplicated(keep=False).map({True: "yes", False: "no"})
    frame["question_repeated"] = pd.Series(questions, dtype=object).duplicated(keep=False).map({True: "yes", False: "no"})
    return frame


def dataset_profile(dataset: InstructionDataset) -> dict[str, Any]:
    """Headline numbers: size, length quantiles, blank and repeated shares."""
    frame = dataset_frame(dataset)
    n = len(frame)
    if n == 0:
        return {"examples": 0}
    quantiles = frame[["question_chars", "answer_chars"]].quantile([0.05, 0.5, 0.95]).round(1)
    return {
        "examples": n,
        "foci": int(frame["focus"].nunique()),
        "sections": {str(k): int(v) for k, v in frame["section"].value_counts().items()},
        "question_chars_p5_p50_p95": [float(v) for v in quantiles["question_chars"]],
        "answer_chars_p5_p50_p95": [float(v) for v in quantiles["answer_chars"]],
        "answer_blank_share": round(float((frame["answer_blank"] == "yes").mean()), 4),
        "answer_repeated_share": round(float((frame["answer_repeated"] == "yes").mean()), 4),
        "question_repeated_share": round(float((frame["question_repeated"] == "yes").mean()), 4),
    }


def render_data_quality_report(dataset: InstructionDataset) -> str:
    """A self-contained Evidently HTML page (shown in the ZenML dashboard)."""
    frame = dataset_frame(dataset)
    if frame.empty:
        return "<!doctype html><html><body><h1>Data quality</h1><p>The dataset is empty.</p></body></html>"
    logging.getLogger("evidently").setLevel(logging.WARNING)
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataSummaryPreset

    definition = DataDefinition(
        numerical_columns=["question_chars", "answer_chars", "question_words", "answer_words"],
        categorical_columns=["section", "focus", "answer_blank", "answer_repeated", "question_repeated"],
    )
    snapshot = Report([DataSummaryPreset()]).run(current_data=Dataset.from_pandas(frame, data_definition=definition))
    html = snapshot.get_html_str(as_iframe=False)
    profile = dataset_profile(dataset)
    banner = (
        "<div style='font-family:system-ui,sans-serif;margin:1rem'><h1>Data quality of the instruction dataset</h1>"
        f"<p>{profile['examples']} examples, {profile['foci']} foci; blank answers "
        f"{profile['answer_blank_share']:.1%}, repeated answers {profile['answer_repeated_share']:.1%}, repeated questions "
        f"{profile['question_repeated_share']:.1%}; answer length p5/p50/p95 "
        f"{escape(str(profile['answer_chars_p5_p50_p95']))} characters.</p></div>"
    )
    return html.replace("<body>", "<body>" + banner, 1) if "<body>" in html else banner + html
