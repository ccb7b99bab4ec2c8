// The chat page's behaviour (docs/serving.md): key in sessionStorage, answers over SSE, feedback.
"use strict";

const KEY = "drugslm-api-key";
const $ = (id) => document.getElementById(id);
let traceId = null;
let rating = null;

function authHeaders() {
  const key = sessionStorage.getItem(KEY);
  return key ? { Authorization: "Bearer " + key } : {};
}

function showKeyState() {
  $("key-status").textContent = sessionStorage.getItem(KEY)
    ? "A key is set for this tab."
    : "No key yet: the key stays in this tab only.";
}

function setRating(value) {
  rating = value;
  for (const id of ["thumbs-up", "thumbs-down"]) {
    const button = $(id);
    button.setAttribute("aria-pressed", String(button.dataset.rating === value));
  }
}

async function errorText(response) {
  try {
    const body = await response.json();
    return (body.error && body.error.message) || response.statusText;
  } catch (_) {
    return response.statusText;
  }
}

function showCitations(citations) {
  // The leaflet excerpts the answer rests on (retrieval): drug, section, source and chunk id.
  const list = $("sources");
  list.textContent = "";
  for (const citation of citations) {
    const item = document.createElement("li");
    item.textContent = citation.drug + " — " + citation.section + " (" + citation.source + ", " + citation.chunk_id + ")";
    list.appendChild(item);
  }
  list.hidden = $("sources-title").hidden = citations.length === 0;
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const answer = $("answer");
  const status = $("answer-status");
  answer.textContent = "";
  answer.setAttribute("aria-busy", "true");
  status.textContent = "Asking…";
  $("ask").disabled = true;
  $("feedback-form").hidden = true;
  $("feedback-status").textContent = "";
  setRating(null);
  showCitations([]);
  traceId = null;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({ messages: [{ role: "user", content: question }], stream: true }),
    });
    if (!response.ok) {
      status.textContent = response.status === 401
        ? "The server refused the key: enter a valid API key above."
        : "Error " + response.status + ": " + (await errorText(response));
      return;
    }
    traceId = response.headers.get("X-Trace-Id");
    const version = response.headers.get("X-Model-Version");
    if (version) $("model-version").textContent = "v" + version;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let failed = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of frame.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) { failed = chunk.error.message; continue; }
          if (chunk.model) $("model-version").textContent = chunk.model;
          if (chunk.citations) showCitations(chunk.citations);
          for (const choice of chunk.choices || []) {
            if (choice.delta && choice.delta.content) answer.textContent += choice.delta.content;
          }
        }
      }
    }
    status.textContent = failed ? "The answer stopped: " + failed : "Done.";
    if (traceId) {
      $("feedback-form").hidden = false;
    } else {
      status.textContent += " (this answer was not recorded, so it cannot be rated)";
    }
  } catch (error) {
    status.textContent = "The request failed: " + error.message;
  } finally {
    answer.setAttribute("aria-busy", "false");
    $("ask").disabled = false;
  }
}

async function sendFeedback(event) {
  event.preventDefault();
  const status = $("feedback-status");
  if (!rating) {
    status.textContent = "Choose thumbs up or thumbs down first.";
    $("thumbs-up").focus();
    return;
  }
  const body = { trace_id: traceId, rating: rating, reviewer_role: $("role").value };
  const correction = $("correction").value.trim();
  if (correction) body.correction = correction;
  if ($("reason").value) body.reason = $("reason").value;
  $("send-feedback").disabled = true;
  status.textContent = "Sending…";
  try {
    const response = await fetch("/v1/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify(body),
    });
    status.textContent = response.ok
      ? "Thank you: your feedback is saved with this answer."
      : "Not saved (" + response.status + "): " + (await errorText(response));
  } catch (error) {
    status.textContent = "Not saved: " + error.message;
  } finally {
    $("send-feedback").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  showKeyState();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    $("api-key").value = "";
    showKeyState();
    $("question").focus();
  });
  $("forget-key").addEventListener("click", () => { sessionStorage.removeItem(KEY); showKeyState(); });
  $("ask-form").addEventListener("submit", ask);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("ask-form").requestSubmit();
  });
  $("thumbs-up").addEventListener("click", () => setRating("up"));
  $("thumbs-down").addEventListener("click", () => setRating("down"));
  $("feedback-form").addEventListener("submit", sendFeedback);
});
