// qfsum web page: read a document, ask several questions (one request each, so the server can
// micro-batch them), show each answer with its evidence highlighted in the document.
"use strict";

const $ = (id) => document.getElementById(id);
const FORMATS = { txt: "text", md: "markdown", markdown: "markdown", jsonl: "jsonl", json: "qmsum" };
const state = { fileName: null, docText: null, answers: [], selected: -1 };

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    if (response.status === 401) $("settings").open = true;
    const retry = response.headers.get("Retry-After");
    throw new Error(`${response.status}: ${data.detail || response.statusText}` + (retry ? ` (retry in ${retry} s)` : ""));
  }
  return data;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

function format() {
  const chosen = $("format").value;
  if (chosen !== "auto") return chosen;
  const ext = (state.fileName || "").split(".").pop().toLowerCase();
  if (FORMATS[ext]) return FORMATS[ext];
  const text = $("text").value.trimStart();
  if (text.startsWith("{") && text.includes('"meeting_transcripts"')) return "qmsum";
  return "text";
}

function documentBody() {
  return { document: $("text").value, format: format(), id: state.fileName || "document" };
}

// -- questions ---------------------------------------------------------------------------------
function addQuestion(value = "") {
  const li = document.createElement("li");
  const row = document.createElement("div");
  const input = Object.assign(document.createElement("input"), { type: "text", value, placeholder: "Ask a question" });
  input.className = "question-input";
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") ask(); });
  const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "×", title: "Remove" });
  remove.className = "remove";
  remove.addEventListener("click", () => { li.remove(); if (!questions().length) addQuestion(); });
  row.append(input, remove);
  li.append(row);
  $("questions").append(li);
  return input;
}

function questions() {
  return [...document.querySelectorAll(".question-input")].map((i) => i.value.trim()).filter(Boolean);
}

function setQuestions(list) {
  $("questions").replaceChildren();
  (list.length ? list : [""]).forEach((q) => addQuestion(q));
}

// -- reading the document --------------------------------------------------------------------
async function readDocument() {
  const parsed = await post("/v1/document", documentBody());
  state.docText = parsed.text;
  renderDocument([]);
  return parsed;
}

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (!file) return;
  state.fileName = file.name;
  $("text").value = await file.text();
  showError("");
  try {
    const parsed = await readDocument();
    if (parsed.queries.length && !questions().length) setQuestions(parsed.queries.slice(0, 8));
  } catch (err) {
    showError(err.message);
  }
});

$("text").addEventListener("input", () => { state.fileName = null; });

// -- asking ------------------------------------------------------------------------------------
async function ask() {
  const asked = questions();
  showError("");
  if (!$("text").value.trim()) return showError("Paste a document or upload a file first.");
  if (!asked.length) return showError("Ask at least one question.");
  $("ask").disabled = true;
  $("progress-box").hidden = false;
  const progress = $("progress");
  progress.removeAttribute("value"); // indeterminate until the first answer
  progress.max = asked.length;
  const started = performance.now();
  let done = 0;
  const status = () => {
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    $("status").textContent = `${done} of ${asked.length} answered · ${seconds} s`;
  };
  status();
  const timer = setInterval(status, 500);
  state.answers = asked.map((q) => ({ query: q, pending: true }));
  state.selected = -1;
  renderAnswers();
  try {
    await readDocument();
    const body = documentBody();
    await Promise.all(asked.map(async (query, i) => {
      try {
        const data = await post("/v1/summarize", { ...body, queries: [query] });
        state.answers[i] = data.answers[0];
      } catch (err) {
        state.answers[i] = { query, error: err.message };
      }
      done += 1;
      progress.value = done;
      status();
      if (state.selected < 0 && !state.answers[i].error) state.selected = i;
      renderAnswers();
    }));
  } catch (err) {
    showError(err.message);
    state.answers = [];
    renderAnswers();
  } finally {
    clearInterval(timer);
    $("ask").disabled = false;
    status();
  }
}

$("ask").addEventListener("click", ask);
$("add-question").addEventListener("click", () => addQuestion().focus());

// -- rendering ---------------------------------------------------------------------------------
function renderAnswers() {
  const list = $("answer-list");
  list.replaceChildren();
  $("no-answers").hidden = state.answers.length > 0;
  state.answers.forEach((answer, i) => {
    const card = $("answer-template").content.firstElementChild.cloneNode(true);
    card.dataset.index = i;
    card.querySelector(".question").textContent = answer.query;
    const summary = card.querySelector(".summary");
    const meta = card.querySelector(".meta");
    if (answer.pending) {
      summary.textContent = "Working…";
      summary.classList.add("muted");
    } else if (answer.error) {
      card.classList.add("failed");
      summary.textContent = answer.error;
    } else {
      renderSummary(summary, answer, i);
      meta.textContent = `${answer.evidence.length} evidence segments · ${Math.round(answer.timings.total_ms + (answer.timings.queue_ms || 0))} ms · batch of ${answer.batch_size}`;
      const items = card.querySelector(".evidence");
      answer.evidence.forEach((ev, j) => {
        const li = document.createElement("li");
        li.tabIndex = 0;
        li.className = "evidence-item";
        li.dataset.target = `ev-${i}-${j}`;
        const snippet = ev.text.length > 140 ? ev.text.slice(0, 137) + "…" : ev.text;
        li.innerHTML = `<span class="score">[${j + 1}] ${ev.score.toFixed(2)}</span> `;
        li.append(document.createTextNode(snippet));
        const go = (e) => { e.stopPropagation(); select(i, `ev-${i}-${j}`); };
        li.addEventListener("click", go);
        li.addEventListener("keydown", (e) => { if (e.key === "Enter") go(e); });
        items.append(li);
      });
    }
    card.classList.toggle("selected", i === state.selected);
    card.addEventListener("click", () => { if (!answer.pending && !answer.error) select(i); });
    list.append(card);
  });
  const current = state.answers[state.selected];
  renderDocument(current && current.evidence ? current.evidence.map((ev, j) => ({ ...ev, id: `ev-${state.selected}-${j}` })) : []);
}

// The answer, sentence by sentence, each followed by its citation markers ([1][3], numbered as the
// evidence list below it: a click highlights the cited passage) or flagged as unsupported.
function renderSummary(summary, answer, i) {
  summary.replaceChildren();
  const sentences = answer.sentences || [];
  if (!sentences.length) {
    summary.textContent = answer.summary || "(no answer)";
    return;
  }
  sentences.forEach((sentence, k) => {
    const span = document.createElement("span");
    span.className = sentence.supported ? "sentence" : "sentence unsupported";
    span.textContent = sentence.text;
    if (!sentence.supported) span.title = "No evidence segment supports this sentence: check it against the document.";
    summary.append(span);
    if (sentence.supported) {
      sentence.citations.forEach((j) => {
        const marker = document.createElement("button");
        marker.type = "button";
        marker.className = "cite";
        marker.textContent = `[${j + 1}]`;
        marker.title = `evidence ${j + 1}, support ${sentence.support.toFixed(2)}`;
        marker.addEventListener("click", (e) => { e.stopPropagation(); select(i, `ev-${i}-${j}`); });
        summary.append(marker);
      });
    } else {
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.textContent = "[unsupported]";
      summary.append(flag);
    }
    if (k < sentences.length - 1) summary.append(document.createTextNode(" "));
  });
  if (answer.note) {
    const note = document.createElement("div");
    note.className = "note muted";
    note.textContent = answer.note;
    summary.append(note);
  }
}

function select(i, targetId) {
  if (state.selected !== i) {
    state.selected = i;
    renderAnswers();
  }
  if (!targetId) return;
  const mark = $(targetId);
  if (!mark) return;
  document.querySelectorAll("mark.active").forEach((m) => m.classList.remove("active"));
  mark.classList.add("active");
  mark.scrollIntoView({ block: "center", behavior: "auto" });
}

// The document with the selected answer's evidence as <mark> elements (offsets index state.docText).
function renderDocument(spans) {
  const doc = $("doc");
  doc.replaceChildren();
  if (state.docText === null) return;
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  let at = 0;
  for (const span of sorted) {
    if (span.start < at) continue; // overlapping windows: keep the first
    doc.append(document.createTextNode(state.docText.slice(at, span.start)));
    const mark = document.createElement("mark");
    mark.id = span.id;
    mark.title = `segment ${span.segment}, score ${span.score.toFixed(3)}`;
    mark.textContent = state.docText.slice(span.start, span.end);
    doc.append(mark);
    at = span.end;
  }
  doc.append(document.createTextNode(state.docText.slice(at)));
}

// -- start ------------------------------------------------------------------------------------
setQuestions([]);
fetch("/healthz").then((r) => r.json()).then((h) => {
  $("pipeline").textContent = `pipeline: ${h.pipeline}`;
  if (h.auth) $("settings").open = true;
}).catch(() => {});
