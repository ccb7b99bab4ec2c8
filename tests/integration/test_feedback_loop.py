"""People in the loop, end to end on loopback: a REAL PostgreSQL (Debian's ``postgresql``), an MLflow
server whose backend store it is, a champion registered there, and our API server (uvicorn) serving
it with traces on. One module-scoped set of servers for every test here.

- every answer (plain and streamed) is an MLflow trace whose id comes back in ``X-Trace-Id``;
- ``POST /v1/feedback``: 401 without a key, 422 for bad values, 404 for an unknown trace, 200 attaches;
- headless Chromium at a phone-sized viewport: key, question, streamed answer and version, thumbs
  down with a correction; then that feedback is found on that request's trace, read back through
  MLflow and straight from PostgreSQL's tables; a screenshot is saved ($DRUGSLM_SCREENSHOT_DIR);
- ``drugslm feedback export`` writes the window's records, the rated and the unrated.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import mlflow
import psycopg2
import pytest
from typer.testing import CliRunner

from drugslm_core.cli import app as cli_app
from drugslm_core.config import BaseModelSettings, DataSettings, PIISettings, ServingSettings
from drugslm_core.data.feedback_records import FeedbackRecord
from drugslm_core.feedback.traces import TraceRecorder
from drugslm_core.serving.app import ServerState, create_app, load_served_model
from drugslm_core.serving.auth import ApiKeys
from drugslm_core.serving.metrics import ServerMetrics
from tests.postgres_mlflow import PostgresMlflow, postgres_mlflow_server
from tests.registered_champion import register_champion

MODEL = "drugslm-feedback-test"
KEY = "feedback-key-0123"
EXPERIMENT = "drugslm-traces-test"
AUTH = {"Authorization": f"Bearer {KEY}"}


@dataclass
class Loop:
    store: PostgresMlflow
    url: str
    metrics: ServerMetrics
    since: datetime
    traces: TraceRecorder


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:


    from tests.servers import uvicorn_in_thread

    work = tmp_path_factory.mktemp("feedback")
    previous = mlflow.get_tracking_uri()
    with postgres_mlflow_server() as store:
        mlflow.set_tracking_uri(store.tracking_uri)
        register_champion(store.tracking_uri, MODEL, work)
        served = load_served_model(MODEL, "champion", BaseModelSettings(), DataSettings(), work / "download")
        state = ServerState(served, ServingSettings(default_max_tokens=12, poll_interval_s=0))
        traces = TraceRecorder(EXPERIMENT, PIISettings(), on_failure=lambda r: state.metrics.trace_failures.labels(r).inc())
        try:
            with uvicorn_in_thread(create_app(state, ApiKeys([KEY]), traces), start_timeout_s=60) as url:
                yield Loop(store, url, state.metrics, datetime.now(timezone.utc) - timedelta(minutes=1), traces)
        finally:
            mlflow.set_tracking_uri(previous)
            mlflow.tracing.reset()


def _ask(loop: Loop, question: str, stream: bool = False) -> httpx.Response:
    return httpx.post(f"{loop.url}/v1/chat/completions", headers=AUTH, timeout=180,
                      json={"messages": [{"role": "user", "content": question}], "stream": stream})


def _failures(loop: Loop) -> float:
    return sum(sample.value for metric in loop.metrics.trace_failures.collect() for sample in metric.samples
               if sample.name.endswith("_total"))


def test_every_answer_is_a_trace_in_the_postgres_store(loop: Loop) -> None:
    plain = _ask(loop, "What is ibuprofen used for? Mail me at ana@example.com")
    assert plain.status_code == 200, plain.text
    streamed = _ask(loop, "What is paracetamol?", stream=True)
    assert streamed.status_code == 200
    text = "".join(
        choice["delta"].get("content", "")
        for line in streamed.text.splitlines() if line.startswith("data: {")
        for choice in json.loads(line[6:])["choices"]
    )
    for response, answer in ((plain, plain.json()["choices"][0]["message"]["content"]), (streamed, text)):
        trace_id = response.headers["X-Trace-Id"]
        deadline = time.monotonic() + 60
        trace = None
        while trace is None and time.monotonic() < deadline:
            trace = mlflow.get_trace(trace_id, silent=True)
            time.sleep(0.2)
        assert trace is not None, f"trace {trace_id} not in the store"
        root = trace.data.spans[0]
        assert root.outputs == {"answer": answer}
        assert root.attributes["model_version"] == f"{MODEL}-v1"
        assert root.attributes["completion_tokens"] > 0 and root.attributes["prompt_tokens"] > 0
        assert root.attributes["drugslm.citations"] == []
        assert trace.info.tags["drugslm.request_id"].startswith("chatcmpl-")
    assert mlflow.get_trace(plain.headers["X-Trace-Id"]).data.spans[0].inputs == {
        "question": "What is ibuprofen used for? Mail me at [EMAIL]"}
    assert _failures(loop) == 0
    metrics = httpx.get(f"{loop.url}/metrics", headers=AUTH).text
    assert "drugslm_trace_failures_total" not in metrics or 'drugslm_trace_failures_total{reason=' not in metrics


def test_feedback_route_answers_401_422_404_and_attaches(loop: Loop) -> None:
    trace_id = _ask(loop, "Can I take aspirin with warfarin?").headers["X-Trace-Id"]
    good = {"trace_id": trace_id, "rating": "up", "reviewer_role": "physician", "reason": "other"}
    assert httpx.post(f"{loop.url}/v1/feedback", json=good).status_code == 401
    for bad in ({"rating": "sideways"}, {"reason": "too_long"}, {"reviewer_role": "nurse"}, {"unknown": 1}):
        response = httpx.post(f"{loop.url}/v1/feedback", headers=AUTH, json={**good, **bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.json()["error"]["code"] == "invalid_value"
    unknown = httpx.post(f"{loop.url}/v1/feedback", headers=AUTH, json={**good, "trace_id": "tr-" + "0" * 32})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "trace_not_found"
    saved = httpx.post(f"{loop.url}/v1/feedback", headers=AUTH, json=good)
    assert saved.status_code == 200, saved.text
    assessments = mlflow.get_trace(trace_id).info.assessments
    assert [(a.name, a.feedback.value, a.source.source_id) for a in assessments] == [("rating", "up", "physician")]


def test_chat_page_in_chromium_thumbs_down_lands_on_the_trace(loop: Loop, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from tests.browser import chromium, screenshot, wait_for

    page = httpx.get(f"{loop.url}/")
    assert page.status_code == 200 and KEY not in page.text and "script-src 'self'" in page.headers["content-security-policy"]
    shots = Path(os.environ.get("DRUGSLM_SCREENSHOT_DIR") or tmp_path / "screenshots")
    correction = "Do not combine them without a physician: bleeding risk (see the warfarin leaflet)."
    with chromium(window_size=(390, 844)) as driver:
        # a phone's viewport exactly (headless Chromium's windows have a minimum width of their own)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})
        driver.get(f"{loop.url}/")
        key = wait_for(driver, lambda d: d.find_element(By.ID, "api-key"), "the key field")
        assert driver.execute_script("return window.innerWidth") == 390
        assert driver.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scrolling
        # every form control has a label
        unlabelled = driver.execute_script(
            "return [...document.querySelectorAll('input,textarea,select')]"
            ".filter(e => !document.querySelector(`label[for='${e.id}']`)).map(e => e.id)")
        assert unlabelled == []
        key.send_keys(KEY)
        driver.find_element(By.ID, "use-key").click()
        wait_for(driver, lambda d: "key is set" in d.find_element(By.ID, "key-status").text, "the key to be kept")
        assert KEY not in driver.page_source
        question = driver.find_element(By.ID, "question")
        assert driver.switch_to.active_element == question  # the key form hands the focus on
        question.send_keys("How should warfarin be taken with aspirin?")
        question.send_keys(Keys.CONTROL, Keys.ENTER)  # keyboard only: Ctrl+Enter asks
        wait_for(driver, lambda d: d.find_element(By.ID, "answer-status").text == "Done.", "the answer", timeout=240)
        answer = driver.find_element(By.ID, "answer").text
        version = driver.find_element(By.ID, "model-version").text
        assert answer.strip() and version == f"{MODEL}-v1"
        feedback = wait_for(driver, lambda d: (e := d.find_element(By.ID, "feedback-form")).is_displayed() and e,
                            "the feedback form")
        down = driver.find_element(By.ID, "thumbs-down")
        down.click()
        assert down.get_attribute("aria-pressed") == "true"
        driver.find_element(By.ID, "correction").send_keys(correction)
        Select(driver.find_element(By.ID, "reason")).select_by_value("missing_warning")
        Select(driver.find_element(By.ID, "role")).select_by_value("pharmacist")
        feedback.find_element(By.ID, "send-feedback").click()
        wait_for(driver, lambda d: "saved" in d.find_element(By.ID, "feedback-status").text.lower(), "the feedback saved")
        assert driver.find_element(By.ID, "feedback-status").text.startswith("Thank you"), \
            driver.find_element(By.ID, "feedback-status").text
        saved_to = screenshot(driver, shots / "chat-page-feedback-390x844.png")
        trace_id = driver.execute_script("return traceId")
    assert Path(saved_to).stat().st_size > 10_000

    # read back through MLflow (the server on PostgreSQL) ...
    trace = mlflow.get_trace(trace_id)
    assert trace.data.spans[0].outputs == {"answer": answer}
    by_name = {a.name: a for a in trace.info.assessments}
    assert by_name["rating"].feedback.value == "down" and by_name["rating"].source.source_id == "pharmacist"
    assert by_name["rating"].metadata == {"reviewer_role": "pharmacist", "reason": "missing_warning"}
    assert by_name["expected_answer"].expectation.value == correction
    # ... and straight from PostgreSQL's tables: the feedback is stored there, on this trace
    with psycopg2.connect(loop.store.postgres.uri) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT name, assessment_type, value FROM assessments WHERE trace_id = %s ORDER BY name",
                       (trace_id,))
        rows = cursor.fetchall()
    assert [(name, kind) for name, kind, _ in rows] == [("expected_answer", "expectation"), ("rating", "feedback")]
    assert json.loads(rows[0][2]) == correction and json.loads(rows[1][2]) == "down"


def test_export_writes_the_window_rated_and_unrated(loop: Loop, tmp_path: Path) -> None:
    rated = _ask(loop, "How much paracetamol a day?").headers["X-Trace-Id"]
    unrated = _ask(loop, "What is metformin for?").headers["X-Trace-Id"]
    saved = httpx.post(f"{loop.url}/v1/feedback", headers=AUTH, json={
        "trace_id": rated, "rating": "down", "reason": "wrong_dose", "reviewer_role": "pharmacist",
        "correction": "At most 4 g a day for adults; call me at 415-555-2671"})
    assert saved.status_code == 200, saved.text
    assert loop.traces.written(unrated, 120)  # nobody rated it: make sure its trace is stored before exporting
    out = tmp_path / "feedback.jsonl"
    until = datetime.now(timezone.utc) + timedelta(minutes=1)
    result = CliRunner().invoke(cli_app, [
        "feedback", "export", "--since", loop.since.isoformat(), "--until", until.isoformat(), "--out", str(out),
        "--tracking-uri", loop.store.tracking_uri, "--config", str(tmp_path / "none.yaml"),
    ], env={"DRUGSLM_FEEDBACK__TRACE_EXPERIMENT": EXPERIMENT})
    assert result.exit_code == 0, result.output
    records = {record.trace_id: record for record in
               (FeedbackRecord.model_validate_json(line) for line in out.read_text().splitlines())}
    assert {rated, unrated} <= set(records)  # with every other request this module served
    assert all(record.model_version == f"{MODEL}-v1" for record in records.values())
    assert records[unrated].rating is None and records[unrated].question == "What is metformin for?"
    down = records[rated]
    assert (down.rating, down.reason, down.reviewer_role) == ("down", "wrong_dose", "pharmacist")
    assert down.correction == "At most 4 g a day for adults; call me at [PHONE]"  # scrubbed like the traces
    assert down.request_id.startswith("chatcmpl-") and down.created_at >= loop.since


def test_with_the_database_down_answers_still_come_and_the_lost_trace_is_counted(
        loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Last in this module: it stops PostgreSQL under the MLflow server."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # the writer fails fast instead of backing off
    loop.store.postgres.stop()
    assert not loop.store.postgres.running()
    before = _failures(loop)
    response = _ask(loop, "What is ibuprofen used for?")
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"].strip()
    trace_id = response.headers["X-Trace-Id"]
    feedback = httpx.post(f"{loop.url}/v1/feedback", headers=AUTH, timeout=120,
                          json={"trace_id": trace_id, "rating": "up", "reviewer_role": "patient"})
    assert feedback.status_code == 503 and feedback.json()["error"]["code"] == "trace_store_unavailable"
    assert loop.traces.written(trace_id, 300)  # the writer has given up on it
    assert _failures(loop) == before + 1
    metrics = httpx.get(f"{loop.url}/metrics", headers=AUTH).text
    assert 'drugslm_trace_failures_total{reason="write_failed"} 1.0' in metrics
