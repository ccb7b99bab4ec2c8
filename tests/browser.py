"""Headless-Chromium checks of the ZenML dashboard and the MLflow UI (selenium).

Tests use these helpers to see what a person would see: that the dashboard of a
real ZenML server draws a pipeline run's DAG and renders an HTML artifact, and
that the MLflow UI shows a run's metrics. Each check saves PNG screenshots and
returns what it found; a failed check raises ``AssertionError`` with the current
URL and an excerpt of the page text.

Needs ``selenium`` and Debian's ``chromium`` + ``chromedriver``. Notes from
making this work on a small, loaded machine:

* ``--disable-3d-apis`` is essential: the ZenML login/survey pages draw an
  animated WebGL background which, rendered in software, takes a whole core and
  drops the page to <1 frame/s, so chromedriver's clicks, typing and
  screenshots time out ("Timed out receiving message from renderer").
* ``page_load_strategy = "none"`` plus explicit waits on the DOM (the
  dashboards are single-page apps that render long after "load").
* Hosts other than ``localhost``/``127.0.0.1`` do not resolve by default, so
  the apps' calls to the internet (avatars, news) fail at once instead of hanging.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    JavascriptException,
    NoSuchElementException,
    NoSuchFrameException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
TIMEOUT = 120.0  # seconds; generous, the machine running the tests may be busy
LOCAL_ONLY = "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"

T = TypeVar("T")
_TRANSIENT = (
    NoSuchElementException,
    StaleElementReferenceException,
    ElementClickInterceptedException,
    ElementNotInteractableException,
    JavascriptException,
    NoSuchFrameException,
)


@contextmanager
def chromium(
    window_size: tuple[int, int] = (1600, 1000),
    *,
    binary: str = CHROMIUM,
    driver_path: str = CHROMEDRIVER,
    local_only: bool = True,
    extra_args: Sequence[str] = (),
) -> Iterator[WebDriver]:
    """A headless Chromium driven by chromedriver; always quit on exit.

    ``window_size`` is the size of the page's viewport (and of the screenshots).
    With ``local_only`` only localhost/127.0.0.1 resolve.
    """
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    options.page_load_strategy = "none"
    width, height = window_size
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-3d-apis",
        f"--window-size={width},{height}",
        *([f"--host-resolver-rules={LOCAL_ONLY}"] if local_only else []),
        *extra_args,
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_script_timeout(60)
        # --window-size sets the outer window; grow it so that the viewport gets the size asked for.
        inner_w, inner_h = driver.execute_script("return [window.innerWidth, window.innerHeight]")
        if (inner_w, inner_h) != (width, height):
            driver.set_window_size(2 * width - inner_w, 2 * height - inner_h)
        yield driver
    finally:
        driver.quit()


# ---------------------------------------------------------------- generic helpers


def page_text(driver: WebDriver, limit: int = 1500) -> str:
    """The visible text of the page (``document.body.innerText``), cut to ``limit`` characters."""
    try:
        text = driver.execute_script("return document.body ? document.body.innerText : ''") or ""
    except Exception as error:  # noqa: BLE001 - only used to describe a failure
        text = f"<page text unavailable: {error.__class__.__name__}>"
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else text[:limit] + " ..."


def fail(driver: WebDriver, message: str) -> AssertionError:
    """An AssertionError describing ``message`` plus where the browser is and what it shows."""
    return AssertionError(f"{message}\n  current URL: {driver.current_url}\n  page text: {page_text(driver)}")


def wait_for(
    driver: WebDriver,
    condition: Callable[[WebDriver], T | None],
    what: str,
    timeout: float = TIMEOUT,
    found: Callable[[WebDriver], object] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy; raise AssertionError after ``timeout``
    (naming ``what``, and what ``found`` says the page had instead)."""
    try:
        wait = WebDriverWait(driver, timeout, poll_frequency=0.5, ignored_exceptions=_TRANSIENT)
        return cast(T, wait.until(condition))
    except TimeoutException:
        message = f"timed out after {timeout:.0f} s waiting for {what}"
        if found is not None:
            try:
                message += f"\n  found instead: {found(driver)}"
            except Exception as error:  # noqa: BLE001 - only describes the failure
                message += f"\n  found instead: <{error.__class__.__name__}>"
        raise fail(driver, message) from None


def screenshot(driver: WebDriver, path: Path) -> str:
    """Save a PNG of the viewport (via DevTools, which copes better with a busy renderer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
    path.write_bytes(base64.b64decode(data))
    return str(path)


def _button(driver: WebDriver, label: str, within: WebElement | None = None) -> WebElement | None:
    """The displayed, enabled button whose text is ``label``, or None."""
    for button in (within or driver).find_elements(By.TAG_NAME, "button"):
        if button.text.strip() == label and button.is_displayed() and button.is_enabled():
            return button
    return None


def _first(scope: WebDriver | WebElement, css: str, test: Callable[[WebElement], bool]) -> WebElement | None:
    """The first element under ``scope`` matching ``css`` that passes ``test``, or None."""
    return next((element for element in scope.find_elements(By.CSS_SELECTOR, css) if test(element)), None)


def _click(driver: WebDriver, element: WebElement) -> None:
    """Click like a user; fall back to a DOM click when something overlays the element."""
    try:
        element.click()
    except (ElementClickInterceptedException, ElementNotInteractableException):
        driver.execute_script("arguments[0].click()", element)


def _wait_click_button(driver: WebDriver, label: str, timeout: float, within: WebElement | None = None) -> None:
    _click(driver, wait_for(driver, lambda d: _button(d, label, within), f"a button {label!r}", timeout))


# ---------------------------------------------------------------- ZenML dashboard


def _server_auth_scheme(url: str) -> str | None:
    """The ZenML server's auth scheme from ``/api/v1/info`` (NO_AUTH for a local daemon server)."""
    parts = urlsplit(url)
    try:
        with urllib.request.urlopen(f"{parts.scheme}://{parts.netloc}/api/v1/info", timeout=30) as response:
            scheme = json.loads(response.read()).get("auth_scheme")
        return str(scheme) if scheme else None
    except Exception:  # noqa: BLE001 - a fact for the report, the browser check decides
        return None


def _zenml_login(driver: WebDriver, username: str, password: str, timeout: float) -> None:
    """Fill in the dashboard's login form (``/login``) and wait until it has gone."""
    user_box = wait_for(driver, lambda d: d.find_element(By.NAME, "username"), "the login form", timeout)
    user_box.clear()
    user_box.send_keys(username)
    if password:
        driver.find_element(By.NAME, "password").send_keys(password)
    _wait_click_button(driver, "Login", timeout)
    wait_for(driver, lambda d: urlsplit(d.current_url).path != "/login", "the login to be accepted", timeout)


def _zenml_survey(driver: WebDriver, timeout: float) -> list[str]:
    """Get through the first-visit survey (``/survey``) a fresh server shows before anything else.

    Steps (ZenML 0.98): account details (name; "news" unticked so that no e-mail is
    needed), role/infrastructure (optional, just "Continue"), Slack ("Skip this step"),
    then "Congratulations ... Go to Dashboard". Returns the steps passed, for the facts.
    """
    passed: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = wait_for(driver, lambda d: page_text(d, 5000) if len(page_text(d)) > 10 else None,
                        "the survey page", timeout)
        if urlsplit(driver.current_url).path != "/survey" or "Congratulations" in text:
            return passed
        if "Add your account details" in text and "account details" not in passed:
            name_box = driver.find_element(By.NAME, "fullName")
            if not name_box.get_attribute("value"):
                name_box.send_keys("Browser Check")
            for box in driver.find_elements(By.CSS_SELECTOR, "[role=checkbox][aria-checked=true]"):
                _click(driver, box)  # do not ask for news: the e-mail field stays optional
            _wait_click_button(driver, "Continue", timeout)
            passed.append("account details")
        elif "primary role" in text and "role" not in passed:
            _wait_click_button(driver, "Continue", timeout)
            passed.append("role")
        elif "Skip this step" in text and "slack" not in passed:
            _wait_click_button(driver, "Skip this step", timeout)
            passed.append("slack")
        time.sleep(0.5)  # let the next step render before reading the page again
    raise fail(driver, f"did not get through the ZenML survey in {timeout:.0f} s (steps passed: {passed})")


def _open_zenml_page(driver: WebDriver, url: str, ready: Callable[[WebDriver], Any], what: str,
                     username: str, password: str, timeout: float,
                     found: Callable[[WebDriver], object] | None = None) -> dict[str, Any]:
    """Open ``url``; pass a login form and the first-visit survey if the dashboard shows them."""
    def where(d: WebDriver) -> str | None:
        path = urlsplit(d.current_url).path
        if path == "/login" and d.find_elements(By.NAME, "username"):
            return "login"
        if path == "/survey" and len(page_text(d)) > 10:
            return "survey"
        return "ready" if ready(d) else None

    facts: dict[str, Any] = {"logged_in": False, "survey_steps": []}
    for _ in range(3):
        driver.get(url)
        page = wait_for(driver, where, what, timeout, found)
        if page == "ready":
            return facts
        if page == "login":
            _zenml_login(driver, username, password, timeout)
            facts["logged_in"] = True
        else:
            facts["survey_steps"] += _zenml_survey(driver, timeout)
    raise fail(driver, f"the dashboard kept sending the browser away from {url}")


def check_zenml_run_page(
    driver: WebDriver,
    run_url: str,
    step_names: Sequence[str],
    html_artifact_name: str,
    expected_html_text: str,
    screenshot_dir: Path | str,
    *,
    username: str = "default",
    password: str = "",
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """Check a pipeline run's page in the ZenML dashboard.

    ``run_url`` comes from ``zenml.utils.dashboard_utils.get_run_url(run)``. Asserts
    that the DAG has a node for every one of ``step_names``, then opens the output
    artifact ``html_artifact_name`` (an ``HTMLString``) from the DAG, its
    "Visualization" tab, and asserts that the HTML renders: the dashboard puts it into
    a sandboxed ``<iframe title="Secure HTML Content" srcdoc=...>`` (after a "Load
    Preview" click), whose rendered text must contain ``expected_html_text``.
    Logs in as ``username``/``password`` if the dashboard asks (a local daemon server
    runs with NO_AUTH and does not). Saves ``zenml_run_dag.png`` and
    ``zenml_html_visualization.png`` under ``screenshot_dir``; returns the facts found.
    """
    started = time.monotonic()
    shots = Path(screenshot_dir)
    facts: dict[str, Any] = {"run_url": run_url, "auth_scheme": _server_auth_scheme(run_url)}

    def step_nodes(d: WebDriver) -> dict[str, WebElement] | None:
        nodes = {n.get_attribute("data-id"): n for n in d.find_elements(By.CSS_SELECTOR, ".react-flow__node")}
        found = {name: nodes[f"step/{name}"] for name in step_names if f"step/{name}" in nodes}
        return found if len(found) == len(step_names) else None

    def dag_nodes(d: WebDriver) -> list[str]:
        return [n.get_attribute("data-id") or "" for n in d.find_elements(By.CSS_SELECTOR, ".react-flow__node")]

    facts |= _open_zenml_page(driver, run_url, step_nodes, f"the run DAG with steps {list(step_names)}",
                              username, password, timeout, dag_nodes)
    nodes = wait_for(driver, step_nodes, f"the run DAG with steps {list(step_names)}", timeout, dag_nodes)
    facts["steps_found"] = [name for name in step_names if nodes[name].is_displayed()]
    if facts["steps_found"] != list(step_names):
        raise fail(driver, f"DAG nodes not displayed: {sorted(set(step_names) - set(facts['steps_found']))}")
    facts["dag_nodes"] = dag_nodes(driver)
    time.sleep(1)  # let React Flow finish fitting the graph into view
    facts["dag_screenshot"] = screenshot(driver, shots / "zenml_run_dag.png")

    # The artifact node's data-id is "<step>/outputs/<kind>/<name>"; clicking it opens a side sheet.
    artifact = wait_for(
        driver,
        lambda d: _first(d, ".react-flow__node-artifact",
                         lambda n: (n.get_attribute("data-id") or "").endswith(f"/{html_artifact_name}")),
        f"an artifact node {html_artifact_name!r} in the DAG", timeout, dag_nodes)
    facts["artifact_node"] = artifact.get_attribute("data-id")
    _click(driver, artifact)
    sheet = wait_for(driver, lambda d: _first(d, "[role=dialog]", lambda s: html_artifact_name in s.text),
                     f"the side sheet of artifact {html_artifact_name!r}", timeout)
    tab = wait_for(driver, lambda d: _first(sheet, "[role=tab]", lambda t: t.text.strip() == "Visualization"),
                   "the artifact's Visualization tab", timeout)
    _click(driver, tab)

    other_since: list[float] = []  # when the tab started to show something else (an error message)

    def html_frame(d: WebDriver) -> WebElement | None:
        frames = sheet.find_elements(By.CSS_SELECTOR, "iframe[title='Secure HTML Content']")
        if frames:
            return frames[0]
        load = _button(d, "Load Preview", sheet)  # the dashboard's "may contain harmful code" guard
        if load is not None:
            _click(d, load)
            return None
        panels = [p for p in sheet.find_elements(By.CSS_SELECTOR, "[role=tabpanel]") if p.is_displayed()]
        shown = (panels[0] if panels else sheet).text.strip()
        if not shown or "Loading Visualization" in shown:
            other_since.clear()
        elif not other_since:
            other_since.append(time.monotonic())
        elif time.monotonic() - other_since[0] > 15:  # not loading, no HTML: the dashboard shows an error
            raise fail(d, f"the Visualization tab of {html_artifact_name!r} shows no HTML but: {shown[:800]!r}")
        return None

    frame = wait_for(driver, html_frame, f"the HTML visualization iframe of {html_artifact_name!r}", timeout)
    if expected_html_text not in (frame.get_attribute("srcdoc") or ""):
        raise fail(driver, f"the HTML visualization's source lacks {expected_html_text!r}")
    def rendered_text(d: WebDriver) -> str | None:
        text = str(d.execute_script("return document.body ? document.body.innerText : ''") or "")
        return text if expected_html_text in text else None

    driver.switch_to.frame(frame)
    try:
        rendered = wait_for(driver, rendered_text,
                            f"{expected_html_text!r} to render inside the HTML visualization", timeout)
    finally:
        driver.switch_to.default_content()
    if not frame.is_displayed() or frame.size["height"] < 50:
        raise fail(driver, f"the HTML visualization iframe is not visible (size {frame.size})")
    facts["html_rendered_text"] = rendered[:500]
    facts["html_iframe_size"] = frame.size
    time.sleep(0.5)
    facts["html_screenshot"] = screenshot(driver, shots / "zenml_html_visualization.png")
    facts["seconds"] = round(time.monotonic() - started, 1)
    return facts


# ---------------------------------------------------------------- MLflow UI


def check_mlflow_run_page(
    driver: WebDriver,
    mlflow_url: str,
    experiment_id: str,
    run_id: str,
    metric_names: Sequence[str],
    screenshot_dir: Path | str,
    *,
    timeout: float = TIMEOUT,
) -> dict[str, Any]:
    """Check a run's page in the MLflow 3 UI.

    Asserts that the run overview's "Metrics" table has a row for each of
    ``metric_names`` (matching the name exactly, so "loss" is not satisfied by
    "eval_loss") and that the "Model metrics" tab draws a chart titled with each.
    Saves ``mlflow_run_overview.png`` (scrolled to the metrics table) and
    ``mlflow_model_metrics.png`` under ``screenshot_dir``; returns the facts found,
    including the latest value the table shows for each metric.
    """
    started = time.monotonic()
    shots = Path(screenshot_dir)
    run_url = f"{mlflow_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    facts: dict[str, Any] = {"run_url": run_url}

    def metric_rows(d: WebDriver) -> dict[str, WebElement] | None:
        rows: dict[str, WebElement] = {}
        for link in d.find_elements(By.CSS_SELECTOR, "[role=row] a"):
            name = link.text.strip()
            if name in metric_names and "/model-metrics" in (link.get_attribute("href") or ""):
                rows[name] = link.find_element(By.XPATH, "./ancestor::*[@role='row'][1]")
        return rows if len(rows) == len(metric_names) else None

    driver.get(run_url)
    wait_for(driver, lambda d: run_id in page_text(d, 100_000), f"the page of run {run_id}", timeout)
    rows = wait_for(driver, metric_rows, f"rows for metrics {list(metric_names)} in the run's Metrics table", timeout,
                    lambda d: [r.text.replace("\n", " ") for r in d.find_elements(By.CSS_SELECTOR, "[role=row]")])
    facts["metric_values"] = {
        name: " ".join(row.text.split()[1:]) if row.text.split()[:1] == [name] else row.text
        for name, row in rows.items()
    }
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", rows[metric_names[0]])
    time.sleep(0.5)
    facts["overview_screenshot"] = screenshot(driver, shots / "mlflow_run_overview.png")

    tab = wait_for(driver, lambda d: _first(d, "[role=tab]", lambda t: t.text.strip() == "Model metrics"),
                   "the 'Model metrics' tab", timeout)
    _click(driver, tab)

    # The tab draws only the charts near the viewport (a run with ~70 metrics has most of
    # them unrendered): collect the titles of drawn charts while scrolling down.
    drawn: set[str] = set()

    def charts(d: WebDriver) -> list[str] | None:
        headings = d.find_elements(By.TAG_NAME, "h4")
        if d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot svg.main-svg"):
            drawn.update(h.text.strip() for h in headings if h.text.strip())
        if all(name in drawn for name in metric_names):
            return sorted(drawn)
        if headings:
            d.execute_script("arguments[0].scrollIntoView({block: 'start'})", headings[-1])
        return None

    facts["chart_titles"] = wait_for(
        driver, charts, f"charts for metrics {list(metric_names)} on 'Model metrics'", timeout,
        lambda d: sorted(drawn))
    # For the screenshot, filter the charts down to the first metric's (e.g. loss and eval_loss).
    search = _first(driver, "input", lambda i: (i.get_attribute("placeholder") or "").startswith("Search metric"))
    if search is not None:
        search.send_keys(metric_names[0])
    time.sleep(1.5)  # plotly draws the traces a moment after the axes
    facts["metrics_screenshot"] = screenshot(driver, shots / "mlflow_model_metrics.png")
    facts["seconds"] = round(time.monotonic() - started, 1)
    return facts
