// qfsum web page: read a document, ask all its questions in one streaming request (the document is
// sent once; the server micro-batches the questions), show each answer's text as a model writes it
// ("writing…", from `token` lines), then the finished answer as its line arrives, with its evidence
// highlighted in the document.
"use strict";

const $ = (id) => document.getElementById(id);
const FORMATS = { txt: "text", md: "markdown", markdown: "markdown", jsonl: "jsonl", json: "qmsum" };
const STREAM = "/v1/summarize/stream";
const MAX_RETRIES = 3; // after a 429 or 503 that says when to retry
// until /info answers: the server's defaults
const DEFAULT_LIMITS = { max_body_bytes: 8 * 2 ** 20, max_document_chars: 1000000, max_segments: 20000,
  max_queries: 16, max_query_chars: 2000, deadline_s: 60, min_words: 10, max_words: 400 };
const state = { fileName: null, docText: null, answers: [], selected: -1, generative: false,
  limits: DEFAULT_LIMITS, run: null };

const number = (n) => n.toLocaleString("en-US");
// bytes as the server's flags count them: "8 MiB", "1.5 MiB", "16 KiB"
const bytesText = (n) => (n >= 2 ** 20 ? `${Number((n / 2 ** 20).toFixed(1))} MiB` : `${Math.ceil(n / 1024)} KiB`);

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

class HttpError extends Error {
  constructor(status, detail, retryAfter) {
    super(`${status}: ${detail}` + (retryAfter ? ` (retry in ${retryAfter} s)` : ""));
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function failure(response) {
  const data = await response.json().catch(() => ({ detail: response.statusText }));
  if (response.status === 401) $("settings").open = true;
  const retry = Number.parseInt(response.headers.get("Retry-After"), 10);
  return new HttpError(response.status, data.detail || response.statusText, Number.isFinite(retry) ? retry : null);
}

async function post(path, body, signal) {
  const response = await fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
  if (!response.ok) throw await failure(response);
  return response;
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

// -- size limits, explained before anything is sent -------------------------------------------
function showLimits() {
  const l = state.limits;
  $("limits").textContent = `The server takes documents of up to ${number(l.max_document_chars)} characters ` +
    `(${bytesText(l.max_body_bytes)} per upload) and up to ${l.max_queries} questions at a time; ` +
    `each answer should come within ${number(l.deadline_s)} s.`;
  $("words").min = l.min_words;
  $("words").max = l.max_words;
  $("words").title = `from ${l.min_words} to ${l.max_words} words; empty: the pipeline's own length`;
  showDocumentSize();
}

// The answer length asked for: null for the pipeline's own, NaN when the box holds no length the server takes.
function wordsAsked() {
  const text = $("words").value.trim();
  if (!text) return null;
  const words = Number(text);
  const { min_words: low, max_words: high } = state.limits;
  return Number.isInteger(words) && words >= low && words <= high ? words : Number.NaN;
}

// Characters as Python counts them (code points): for plain text and Markdown the server's document
// is the text itself, so the check is exact; JSON formats are read first, so only the server knows.
function documentProblem() {
  const text = $("text").value;
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > state.limits.max_body_bytes) {
    return `The document is ${bytesText(bytes)}, over the server's ${bytesText(state.limits.max_body_bytes)} upload limit.`;
  }
  const chars = [...text].length;
  if (["text", "markdown"].includes(format()) && chars > state.limits.max_document_chars) {
    return `The document is ${number(chars)} characters, over the server's limit of ` +
      `${number(state.limits.max_document_chars)}: split it, or ask about a part.`;
  }
  return null;
}

function showDocumentSize() {
  const text = $("text").value;
  const size = $("doc-size");
  const problem = text ? documentProblem() : null;
  size.textContent = !text ? "" : problem ||
    `${number([...text].length)} of ${number(state.limits.max_document_chars)} characters`;
  size.classList.toggle("over", Boolean(problem));
}

// -- questions: multi-line boxes; Enter is a new line, Ctrl+Enter (⌘+Enter) answers ------------
function addQuestion(value = "") {
  const li = document.createElement("li");
  const row = document.createElement("div");
  const input = Object.assign(document.createElement("textarea"),
    { rows: 2, value, placeholder: "Ask a question (Ctrl+Enter to answer)" });
  input.className = "question-input";
  input.maxLength = state.limits.max_query_chars;
  input.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) ask(); });
  const remove = Object.assign(document.createElement("button"), { type: "button", textContent: "×", title: "Remove" });
  remove.className = "remove";
  remove.addEventListener("click", () => { li.remove(); if (!questionBoxes().length) addQuestion(); updateAdd(); });
  row.append(input, remove);
  li.append(row);
  $("questions").append(li);
  updateAdd();
  return input;
}

const questionBoxes = () => [...document.querySelectorAll(".question-input")];

function questions() {
  return questionBoxes().map((i) => i.value.trim()).filter(Boolean);
}

function updateAdd() {
  const full = questionBoxes().length >= state.limits.max_queries;
  $("add-question").disabled = full;
  $("add-question").title = full ? `The server takes up to ${state.limits.max_queries} questions at a time.` : "";
}

function setQuestions(list) {
  $("questions").replaceChildren();
  (list.length ? list : [""]).slice(0, state.limits.max_queries).forEach((q) => addQuestion(q));
}

// -- reading the document (to show it and fill in the questions a QMSum meeting carries) --------
$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (!file) return;
  showError("");
  if (file.size > state.limits.max_body_bytes) {
    return showError(`${file.name} is ${bytesText(file.size)}, over the server's ${bytesText(state.limits.max_body_bytes)} ` +
      "upload limit: it was not sent.");
  }
  state.fileName = file.name;
  $("text").value = await file.text();
  showDocumentSize();
  const problem = documentProblem();
  if (problem) return showError(problem + " It was not sent.");
  try {
    const parsed = await (await post("/v1/document", documentBody())).json();
    state.docText = parsed.text;
    renderDocument([]);
    if (parsed.queries.length && !questions().length) setQuestions(parsed.queries);
  } catch (err) {
    showError(err.message);
  }
});

$("text").addEventListener("input", () => { state.fileName = null; showDocumentSize(); });
$("format").addEventListener("change", showDocumentSize);

// -- asking: one streaming request, retried after a 429 / 503 as the server asks ----------------
function sleep(seconds, signal) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    signal.addEventListener("abort", () => { clearTimeout(timer); reject(new DOMException("stopped", "AbortError")); },
      { once: true });
  });
}

// POST the stream request; on a refusal with Retry-After, wait as asked and try again (a few times).
async function openStream(body, run) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await post(STREAM, body, run.abort.signal);
    } catch (err) {
      const busy = err instanceof HttpError && [429, 503].includes(err.status) && err.retryAfter !== null;
      if (!busy || attempt >= MAX_RETRIES) throw err;
      for (let left = err.retryAfter; left > 0; left -= 1) { // a countdown, as the server asked
        run.note = `the server is busy: retrying in ${left} s (try ${attempt + 2} of ${MAX_RETRIES + 1})`;
        run.show();
        await sleep(1, run.abort.signal);
      }
      run.note = "";
      run.show();
    }
  }
}

// Hand each NDJSON line of the response to `onLine` as it arrives.
async function readLines(response, onLine) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
}

async function ask() {
  if (state.run) return;
  const asked = questions();
  showError("");
  if (!$("text").value.trim()) return showError("Paste a document or upload a file first.");
  if (!asked.length) return showError("Ask at least one question.");
  if (asked.length > state.limits.max_queries) {
    return showError(`Ask at most ${state.limits.max_queries} questions at a time.`);
  }
  const problem = documentProblem();
  if (problem) return showError(problem);
  const words = wordsAsked();
  if (Number.isNaN(words)) {
    return showError(`The answer length is a whole number of words from ${state.limits.min_words} to ${state.limits.max_words} ` +
      "(or empty for the pipeline's own).");
  }

  // settled: questions the server answered or failed (lines received); the bar shows those
  const run = { abort: new AbortController(), answered: 0, failed: 0, settled: 0, note: "", finished: false,
    started: performance.now() };
  state.run = run;
  const progress = $("progress");
  run.show = () => {
    const seconds = ((performance.now() - run.started) / 1000).toFixed(0);
    const counts = `${run.answered} answered` + (run.failed ? `, ${run.failed} failed` : "");
    const left = asked.length - run.answered - run.failed;
    const where = run.finished ? counts : `${run.answered + run.failed} of ${asked.length} done: ${counts}`;
    $("status").textContent = [where, run.finished && left > 0 ? `${left} not answered` : "", run.note,
      `${seconds} s`].filter(Boolean).join(" · ");
  };
  $("ask").disabled = true;
  $("stop").hidden = false;
  $("progress-box").hidden = false;
  $("progress-box").dataset.state = "running";
  progress.removeAttribute("value"); // indeterminate until the first answer
  progress.max = asked.length;
  const timer = setInterval(run.show, 500);
  run.show();
  state.answers = asked.map((q) => ({ query: q, pending: true }));
  state.selected = -1;
  renderAnswers();

  let complete = false;
  let ending = "";
  try {
    const options = { include_document: true, ...(words === null ? {} : { words }) };
    const response = await openStream({ ...documentBody(), queries: asked, options }, run);
    await readLines(response, (line) => {
      if (line.type === "document") {
        state.docText = line.text;
        renderDocument([]);
      } else if (line.type === "token") {
        addDraft(line.index, line.text);
      } else if (line.type === "answer" || line.type === "error") {
        if (line.type === "answer") run.answered += 1;
        else run.failed += 1;
        run.settled += 1;
        state.answers[line.index] = line.type === "answer" ? line : { query: line.query, error: `${line.status}: ${line.detail}` };
        if (state.selected < 0 && line.type === "answer") state.selected = line.index;
        progress.value = run.settled;
        renderAnswers();
      } else if (line.type === "done") {
        complete = true;
      }
      run.show();
    });
    if (!complete) throw new Error("The connection was lost before every question was answered.");
  } catch (err) {
    const stopped = err.name === "AbortError";
    ending = stopped ? "stopped" : "the request failed";
    showError(stopped ? "" : err.message);
    const reason = stopped ? "stopped before it was answered" : "not answered: the request failed";
    state.answers = state.answers.map((a) => (a.pending ? { query: a.query, error: reason } : a));
    if (run.answered + run.failed === 0 && !stopped) state.answers = []; // the request itself failed
    run.failed = state.answers.filter((a) => a.error).length;
    renderAnswers();
  } finally {
    clearInterval(timer);
    run.finished = true;
    run.note = ending;
    const failed = run.failed > 0 || !complete;
    progress.value = run.settled; // determinate: the bar stops where the work stopped
    $("progress-box").dataset.state = failed ? "failed" : "done";
    $("ask").disabled = false;
    $("stop").hidden = true;
    state.run = null;
    run.show();
  }
}

$("ask").addEventListener("click", ask);
$("stop").addEventListener("click", () => { if (state.run) state.run.abort.abort(); });
$("add-question").addEventListener("click", () => addQuestion().focus());

// -- rendering ---------------------------------------------------------------------------------
// A token line: the question's text so far grows; only its card changes (the others, and the
// document with its highlights, stay as they are). The answer line replaces it with the finished answer.
function addDraft(i, text) {
  const answer = state.answers[i];
  if (!answer || !answer.pending) return;
  answer.draft = (answer.draft || "") + text;
  const card = document.querySelector(`#answer-list .answer[data-index="${i}"]`);
  if (card) showDraft(card, answer.draft);
  else renderAnswers();
}

// A card whose answer a model is still writing: its raw text so far, marked as such.
function showDraft(card, draft) {
  card.classList.add("writing");
  const summary = card.querySelector(".summary");
  let kind = card.querySelector(".kind");
  if (!kind) { // a "Working…" card has none
    kind = Object.assign(document.createElement("p"), { className: "kind" });
    summary.before(kind);
  }
  kind.textContent = "writing…";
  summary.classList.remove("muted");
  summary.textContent = draft;
}

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
    const kind = card.querySelector(".kind");
    if (answer.pending && answer.draft) {
      card.classList.add("pending");
      showDraft(card, answer.draft);
    } else if (answer.pending) {
      card.classList.add("pending");
      summary.textContent = "Working…";
      summary.classList.add("muted");
      kind.remove();
    } else if (answer.error) {
      card.classList.add("failed");
      summary.textContent = answer.error;
      kind.remove();
    } else {
      card.classList.add(state.generative ? "generated" : "extracted");
      kind.textContent = state.generative
        ? "Generated by a model: check each sentence against the evidence it cites."
        : "Quoted from the document.";
      renderSummary(summary, answer, i);
      meta.textContent = `${answer.evidence.length} evidence segments · ${Math.round(answer.timings.total_ms + (answer.timings.queue_ms || 0))} ms · batch of ${answer.batch_size}`;
      const items = card.querySelector(".evidence");
      // fused scores (~0.03) mean nothing to a reader: show each passage's relevance rank instead
      const byScore = answer.evidence.map((ev, j) => j).sort((a, b) => answer.evidence[b].score - answer.evidence[a].score);
      const rank = new Map(byScore.map((j, r) => [j, r + 1]));
      answer.evidence.forEach((ev, j) => {
        const li = document.createElement("li");
        li.tabIndex = 0;
        li.className = "evidence-item";
        li.dataset.target = `ev-${i}-${j}`;
        const snippet = ev.text.length > 140 ? ev.text.slice(0, 137) + "…" : ev.text;
        const score = document.createElement("span");
        score.className = "score";
        score.textContent = `[${j + 1}] rank #${rank.get(j)}`;
        score.title = `relevance rank ${rank.get(j)} of ${answer.evidence.length} (score ${ev.score.toFixed(3)})`;
        li.append(score, document.createTextNode(" " + snippet));
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
        marker.addEventListener("click", (e) => {
          e.stopPropagation();
          select(i, `ev-${i}-${j}`);
          if (sentence.quote && j === sentence.citations[0]) highlightQuote(`ev-${i}-${j}`, answer.evidence[j].start, sentence.quote);
        });
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

// Inside a cited passage, the sentence that supports the answer's sentence best (document offsets).
function highlightQuote(markId, passageStart, quote) {
  document.querySelectorAll("span.quote").forEach((old) => {
    const parent = old.parentNode;
    old.replaceWith(...old.childNodes);
    parent.normalize();
  });
  const mark = $(markId);
  const text = mark && mark.firstChild;
  const start = quote.start - passageStart;
  const end = quote.end - passageStart;
  if (!text || text.nodeType !== Node.TEXT_NODE || start < 0 || end > text.length || start >= end) return;
  const range = document.createRange();
  range.setStart(text, start);
  range.setEnd(text, end);
  const span = document.createElement("span");
  span.className = "quote";
  span.title = "the sentence that supports the answer's sentence best";
  range.surroundContents(span);
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
    mark.title = `segment ${span.segment}`;
    mark.textContent = state.docText.slice(span.start, span.end);
    doc.append(mark);
    at = span.end;
  }
  doc.append(document.createTextNode(state.docText.slice(at)));
}

// -- start ------------------------------------------------------------------------------------
setQuestions([]);
fetch("/info").then((r) => (r.ok ? r.json() : Promise.reject(new Error(r.statusText)))).then((info) => {
  $("pipeline").textContent = `pipeline: ${info.pipeline}` + (info.generative ? " (generated answers)" : " (quoted answers)");
  state.generative = info.generative;
  state.limits = { ...DEFAULT_LIMITS, ...info.limits };
  if (info.auth) $("settings").open = true;
  questionBoxes().forEach((box) => { box.maxLength = info.limits.max_query_chars; });
  updateAdd();
  showLimits();
}).catch(() => {
  $("limits").textContent = "The server did not say its size limits; a document over them gets an error (413).";
});
