"""The web page end to end in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The page sends the document once with all its questions (`/v1/summarize/stream`), shows each answer's
text growing as a model writes it (`token` lines), and each finished answer as its line arrives. Slow work is a gate the test opens (a question with "slow" in it waits for
it), never a sleep, so what the page shows when does not depend on timing.

Set QFSUM_WEB_SCREENSHOT=docs/web.png (and optionally QFSUM_WEB_PIPELINE=default) to also write
the screenshot the docs show.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("uvicorn")

from conftest import MEETING_B  # noqa: E402
from qfsum import Pipeline  # noqa: E402
from qfsum.serving import ServerConfig, create_app  # noqa: E402
from qfsum.serving.server import serve_in_thread  # noqa: E402
from qfsum.writers import WriterConfig  # noqa: E402

STREAM = "/v1/summarize/stream"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
FILLER = "The committee discussed the weather, the minutes of the last meeting and the coffee rota."
LONG_TEXT = "\n\n".join([FILLER] * 80 + ["The budget for the new bridge was cut by ten percent because steel prices rose."])

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)


class HeldPipeline:
    """A real pipeline whose batches holding a "slow" question wait for `gate`, and that fails (a bug,
    500) on any batch holding a "boom" question."""

    def __init__(self, inner: Pipeline) -> None:
        self.inner, self.config = inner, inner.config
        self.gate = threading.Event()

    def summarize_batch(self, items):
        if any("slow" in q for _, q in items):
            self.gate.wait(timeout=60)
        if any("boom" in q for _, q in items):
            raise TypeError("an unexpected bug")
        return self.inner.summarize_batch(items)


@pytest.fixture(scope="module")
def pipeline():
    return Pipeline.load(os.environ.get("QFSUM_WEB_PIPELINE", "extractive-bm25"))


@pytest.fixture(scope="module")
def server_url(pipeline):
    with serve_in_thread(create_app(pipeline, ServerConfig(deadline_s=600))) as url:  # slow CPUs: no 504s
        yield url


@pytest.fixture
def held():
    """A server answering one question per batch, whose "slow" questions wait for `held.gate`."""
    inner = HeldPipeline(Pipeline.load("extractive-bm25"))
    with serve_in_thread(create_app(inner, ServerConfig(max_batch_size=1, max_wait_ms=0, deadline_s=600))) as url:
        inner.url = url
        yield inner
        inner.gate.set()  # never leave the model thread waiting


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server_url):
    # bypass_csp: the page forbids eval, which playwright's wait_for_function uses to poll; the page itself
    # runs under its CSP as served (its scripts are files from the same origin)
    page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    page.goto(server_url)
    yield page
    page.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)  # see `page`
    page.goto(url)
    return page


def posts(page) -> list[dict]:
    """Every POST the page sends from now on: path and JSON body."""
    sent: list[dict] = []
    page.on("request", lambda r: sent.append({"path": "/" + r.url.split("/", 3)[3], "body": r.post_data_json})
            if r.method == "POST" else None)
    return sent


def ndjson(lines: list[dict]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def crafted_lines(start: int) -> list[dict]:
    """A stream answering one question about LONG_TEXT: a supported sentence and an unsupported one."""
    answer = {
        "type": "answer", "index": 0,
        "query": "What happened?", "summary": "The bridge budget was cut. It was 1.3 million.",
        "sentences": [
            {"text": "The bridge budget was cut.", "start": 0, "end": 26, "citations": [0], "support": 0.9, "supported": True},
            {"text": "It was 1.3 million.", "start": 27, "end": 46, "citations": [0], "support": 0.1, "supported": False},
        ],
        "evidence": [{"segment": 80, "score": 1.0, "start": start, "end": len(LONG_TEXT), "text": LONG_TEXT[start:]}],
        "timings": {"total_ms": 1.0}, "batch_size": 1,
    }
    return [{"type": "document", "id": "document", "text": LONG_TEXT}, answer,
            {"type": "done", "id": "document", "answered": 1, "failed": 0}]


def ask(page, questions: list[str], document: str = LONG_TEXT) -> None:
    page.fill("#text", document)
    for i, question in enumerate(questions):
        if i:
            page.click("#add-question")
        page.locator(".question-input").nth(i).fill(question)
    page.click("#ask")


def answered(page, n: int, timeout_s: float = 60) -> None:
    page.wait_for_function(f"document.querySelectorAll('.answer').length === {n} && "
                           "!document.querySelector('#ask').disabled", timeout=timeout_s * 1000)


def test_pasted_document_two_questions_answers_highlights_and_scrolls(page):
    page.fill("#text", LONG_TEXT)
    page.fill(".question-input", "What happened to the bridge budget?")
    page.click("#add-question")
    page.locator(".question-input").nth(1).fill("What did the committee discuss?")
    page.click("#ask")
    answered(page, 2)
    assert page.inner_text("#status").startswith("2 answered ·")
    first = page.locator(".answer").nth(0)
    assert "bridge" in first.locator(".summary").inner_text()
    assert "batch of" in first.locator(".meta").inner_text()
    assert page.locator("#doc mark").count() >= 1  # the first answer's evidence is highlighted
    assert page.evaluate("document.querySelector('#doc').textContent") == LONG_TEXT  # offsets index this text

    bridge = first.locator(".evidence-item").filter(has_text="bridge")
    assert page.evaluate("document.querySelector('#document-pane').scrollTop") == 0
    bridge.first.click()
    target = bridge.first.get_attribute("data-target")
    mark = page.locator(f"#{target}")
    assert "active" in mark.get_attribute("class")
    assert "bridge" in mark.inner_text()
    assert page.evaluate("document.querySelector('#document-pane').scrollTop") > 0  # scrolled to the evidence
    pane, box = page.locator("#document-pane").bounding_box(), mark.bounding_box()
    assert pane["y"] <= box["y"] and box["y"] + box["height"] <= pane["y"] + pane["height"]


def test_uploaded_qmsum_meeting_prefills_its_questions(page, tmp_path):
    meeting = tmp_path / "meeting_b.json"
    meeting.write_text(json.dumps(MEETING_B))
    page.set_input_files("#file", str(meeting))
    page.wait_for_function("document.querySelectorAll('.question-input').length === 3")
    assert page.locator(".question-input").nth(1).input_value() == "What did the group decide about voice recognition?"
    assert "Project Manager: Okay" in page.inner_text("#doc")  # the server's reading, markup cleaned
    page.click("#ask")
    answered(page, 3)
    second = page.locator(".answer").nth(1)
    second.click()
    assert "selected" in second.get_attribute("class")
    marks = page.locator("#doc mark")
    assert marks.count() == second.locator(".evidence-item").count()


def test_errors_are_shown_not_thrown(page):
    page.fill("#text", "")
    page.click("#ask")
    assert page.locator("#error").inner_text() == "Paste a document or upload a file first."
    page.fill("#text", "{not json")
    page.select_option("#format", "qmsum")
    page.fill(".question-input", "Anything?")
    page.click("#ask")
    page.wait_for_function("!document.querySelector('#error').hidden && !document.querySelector('#ask').disabled")
    assert page.locator("#error").inner_text().startswith("422: document: malformed JSON")


@pytest.mark.skipif(not os.environ.get("QFSUM_WEB_SCREENSHOT"), reason="set QFSUM_WEB_SCREENSHOT=PATH")
def test_screenshot(page):
    meeting = Path(__file__).resolve().parents[1] / "examples" / "meeting.txt"
    page.set_input_files("#file", str(meeting))
    page.wait_for_function("document.querySelector('#doc').textContent.length > 0")
    page.fill(".question-input", "What did the meeting decide about the budget overrun?")
    page.click("#add-question")
    page.locator(".question-input").nth(1).fill("When will the reading room close, and what will replace it?")
    page.click("#ask")
    answered(page, 2, timeout_s=600)  # the default pipeline takes a while on a small CPU
    page.locator(".evidence-item").nth(1).click()
    page.screenshot(path=os.environ["QFSUM_WEB_SCREENSHOT"])


def test_the_page_works_under_its_own_content_security_policy(browser, server_url):
    """No bypass here: the served CSP applies, and the page must still answer (no inline script or eval)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(server_url)
    page.fill("#text", LONG_TEXT)
    page.fill(".question-input", "What happened to the bridge budget?")
    page.click("#ask")
    page.locator(".answer .summary").first.wait_for(timeout=60_000)
    page.locator("#status").filter(has_text="1 answered ·").wait_for(timeout=60_000)
    assert "bridge" in page.locator(".answer .summary").first.inner_text()
    assert violations == []
    page.close()


def test_citation_markers_highlight_their_evidence_and_unsupported_sentences_are_flagged(page):
    page.fill("#text", LONG_TEXT)
    page.fill(".question-input", "What happened to the bridge budget?")
    page.click("#ask")
    answered(page, 1)
    marker = page.locator(".answer .summary .cite").last
    sentence = page.locator(".answer .summary .sentence").last.inner_text()
    marker.click()
    assert sentence in page.inner_text("#doc mark.active")  # the cited passage holds the sentence, highlighted
    quote = page.inner_text("#doc mark.active span.quote")  # and, inside it, the sentence that supports it
    ranks = page.locator(".answer .evidence .score").all_inner_texts()  # passages show a rank, not a fused score
    assert ranks and all(re.fullmatch(r"\[\d+\] rank #\d+", r) for r in ranks)
    assert quote and set(sentence.lower().split()) <= set(quote.lower().split())

    start = LONG_TEXT.index("The budget")
    page.route("**/v1/summarize/stream", lambda route: route.fulfill(body=ndjson(crafted_lines(start)),
                                                                   content_type="application/x-ndjson"))
    page.fill(".question-input", "What happened?")
    page.click("#ask")
    page.locator(".answer .summary .flag").first.wait_for(timeout=30_000)
    assert page.locator(".answer .sentence.unsupported").inner_text() == "It was 1.3 million."
    assert page.locator(".answer .summary .cite").count() == 1  # the supported sentence only


def test_several_questions_are_answered_with_the_document_uploaded_once(page):
    sent = posts(page)
    questions = ["What happened to the bridge budget?", "What did the committee discuss?", "Who made the coffee?"]
    ask(page, questions)
    answered(page, 3)
    assert [p["path"] for p in sent] == [STREAM]  # one request: the document went up once, with every question
    assert sent[0]["body"]["document"] == LONG_TEXT and sent[0]["body"]["queries"] == questions
    assert page.locator(".answer.failed, .answer.pending").count() == 0
    assert page.inner_text("#status").startswith("3 answered ·")
    assert page.get_attribute("#progress-box", "data-state") == "done"
    assert page.evaluate("document.querySelector('#progress').value") == 3


def test_each_answer_shows_as_it_streams_in(browser, held):
    page = open_page(browser, held.url)
    ask(page, ["What happened to the bridge budget?", "slow: what did the committee discuss?"])
    # the first answer is on the page while the second question still waits for the gate
    page.locator(".answer:not(.pending) .summary").filter(has_text="bridge").wait_for(timeout=60_000)
    assert page.locator(".answer.pending").count() == 1
    assert page.inner_text("#status").startswith("1 of 2 done: 1 answered")
    assert page.locator("#ask").is_disabled() and page.locator("#stop").is_visible()
    held.gate.set()
    answered(page, 2)
    assert page.locator(".answer.pending").count() == 0
    assert page.inner_text("#status").startswith("2 answered ·")
    page.close()


def test_stop_hangs_up_and_counts_the_questions_left_as_failed(browser, held):
    page = open_page(browser, held.url)
    ask(page, ["What happened to the bridge budget?", "slow: what did the committee discuss?"])
    page.locator(".answer:not(.pending) .summary").filter(has_text="bridge").wait_for(timeout=60_000)
    page.click("#stop")
    page.locator("#status").filter(has_text="stopped").wait_for(timeout=30_000)
    assert page.inner_text("#status").startswith("1 answered, 1 failed · stopped")
    assert page.locator(".answer.failed .summary").inner_text() == "stopped before it was answered"
    assert page.get_attribute("#progress-box", "data-state") == "failed"
    assert page.locator("#error").is_hidden() and not page.locator("#ask").is_disabled()
    page.close()


def test_a_429_is_retried_after_the_time_the_server_asks(page):
    sent = posts(page)
    refused = []

    def busy_once(route):
        if refused:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.fulfill(status=429, headers={"Retry-After": "1"},
                          json={"detail": "the server is busy (the queue holds 256 queries); retry in 1 s"})

    page.route(f"**{STREAM}", busy_once)
    ask(page, ["What happened to the bridge budget?", "What did the committee discuss?"])
    page.locator("#status").filter(has_text="retrying in 1 s").wait_for(timeout=30_000)
    answered(page, 2)
    assert [p["path"] for p in sent] == [STREAM, STREAM]  # refused once, then the same request again
    assert sent[0]["body"] == sent[1]["body"]
    assert page.inner_text("#status").startswith("2 answered ·")
    assert page.locator("#error").is_hidden()


def test_failures_are_counted_apart_from_answers_and_the_progress_bar_stops(browser, held):
    page = open_page(browser, held.url)
    ask(page, ["What happened to the bridge budget?", "boom: what broke?", "What did the committee discuss?"])
    answered(page, 3)
    assert page.inner_text("#status").startswith("2 answered, 1 failed ·")
    failed = page.locator(".answer.failed")
    assert failed.count() == 1 and "boom" in failed.locator(".question").inner_text()
    assert failed.locator(".summary").inner_text().startswith("500: the pipeline failed on this question")
    assert page.get_attribute("#progress-box", "data-state") == "failed"
    assert page.evaluate("document.querySelector('#progress').position") == 1  # full, not spinning

    # a stream cut off after one answer: the rest are failures, the bar stops where the work stopped
    start = LONG_TEXT.index("The budget")
    lines = crafted_lines(start)[:2]  # document and one answer, no "done" line
    page.route(f"**{STREAM}", lambda route: route.fulfill(body=ndjson(lines), content_type="application/x-ndjson"))
    page.locator(".question-input").nth(2).fill("slow: never answered?")
    page.click("#ask")
    page.locator("#progress-box[data-state=failed] #status").filter(has_text="1 answered, 2 failed").wait_for(
        timeout=30_000)
    assert "connection was lost" in page.inner_text("#error")
    assert page.locator(".answer.failed").count() == 2
    assert page.evaluate("[document.querySelector('#progress').value, document.querySelector('#progress').max]") == [1, 3]
    assert not page.locator("#ask").is_disabled()
    page.close()


def test_a_refused_request_stops_the_progress_bar(page):
    page.route(f"**{STREAM}", lambda route: route.fulfill(status=413, json={"detail": "the document is too large"}))
    ask(page, ["What happened to the bridge budget?"])
    page.locator("#error").filter(has_text="413: the document is too large").wait_for(timeout=30_000)
    assert page.get_attribute("#progress-box", "data-state") == "failed"
    assert page.evaluate("document.querySelector('#progress').position") >= 0  # determinate: not spinning
    assert "the request failed" in page.inner_text("#status")


def test_question_boxes_are_multi_line_and_ctrl_enter_asks(page):
    sent = posts(page)
    page.fill("#text", LONG_TEXT)
    box = page.locator(".question-input")
    assert box.evaluate("e => e.tagName") == "TEXTAREA"
    box.click()
    page.keyboard.type("What happened to the bridge budget?")
    page.keyboard.press("Enter")  # a new line, not a request
    page.keyboard.type("And why?")
    assert box.input_value() == "What happened to the bridge budget?\nAnd why?"
    assert sent == []
    page.keyboard.press("Control+Enter")
    answered(page, 1)
    assert sent[0]["body"]["queries"] == ["What happened to the bridge budget?\nAnd why?"]


def test_the_page_has_a_favicon(page, server_url):
    href = page.get_attribute("link[rel=icon]", "href")
    icon = page.request.get(server_url + href)
    assert icon.status == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.text().lstrip().startswith("<svg")


@pytest.fixture
def small_url(pipeline):
    config = ServerConfig(max_document_chars=2000, max_body_bytes=16 * 1024)
    with serve_in_thread(create_app(pipeline, config)) as url:
        yield url


def test_size_limits_are_shown_before_upload_and_a_document_over_them_is_not_sent(browser, small_url, tmp_path):
    page = open_page(browser, small_url)
    sent = posts(page)
    limits = page.locator("#limits").filter(has_text="2,000 characters")
    limits.wait_for(timeout=30_000)  # from GET /info, before anything is uploaded
    assert "(16 KiB per upload)" in limits.inner_text() and "up to 16 questions" in limits.inner_text()

    ask(page, ["What happened to the bridge budget?"], document=LONG_TEXT)  # ~7,300 characters
    assert page.inner_text("#error").startswith(f"The document is {len(LONG_TEXT):,} characters, over the server's limit of 2,000")
    assert "over" in page.get_attribute("#doc-size", "class")

    big = tmp_path / "big.txt"
    big.write_text("word " * 5000)  # 25 KB: over the 16 KiB upload limit
    page.set_input_files("#file", str(big))
    page.locator("#error").filter(has_text="upload limit: it was not sent").wait_for(timeout=30_000)
    assert sent == []  # neither was sent

    ask(page, ["What happened to the bridge budget?"], document=LONG_TEXT[-500:])  # within the limits
    answered(page, 1)
    assert [p["path"] for p in sent] == [STREAM]
    page.close()


def test_generated_answers_are_shown_as_generated_with_their_markers_and_flags(browser, server_url):
    page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
    info = {"pipeline": "default", "writer": "generative", "generative": True, "auth": False,
            "limits": {"max_body_bytes": 8 * 2**20, "max_document_chars": 1_000_000, "max_segments": 20_000,
                       "max_queries": 16, "max_query_chars": 2000, "deadline_s": 60.0}}
    page.route("**/info", lambda route: route.fulfill(json=info))
    start = LONG_TEXT.index("The budget")
    page.route(f"**{STREAM}", lambda route: route.fulfill(body=ndjson(crafted_lines(start)),
                                                        content_type="application/x-ndjson"))
    page.goto(server_url)
    page.locator("#pipeline").filter(has_text="generated answers").wait_for(timeout=30_000)
    ask(page, ["What happened?"])
    answered(page, 1)
    card = page.locator(".answer")
    assert "generated" in card.get_attribute("class")
    assert card.locator(".kind").inner_text().startswith("Generated by a model")
    assert card.locator(".cite").count() == 1 and card.locator(".flag").inner_text() == "[unsupported]"
    card.locator(".cite").click()
    assert "bridge" in page.inner_text("#doc mark.active")
    page.close()


class WritingPipeline:
    """The extractive pipeline posing as a generative one, so the server streams its text: each answer is
    written in two pieces, each followed by a gate the test opens, then the finished answer comes."""

    PIECES = ("The committee wrote ", "its first words")

    def __init__(self, inner: Pipeline) -> None:
        self.inner = inner
        self.config = replace(inner.config, writer=WriterConfig(kind="generative", model="a model"))
        self.gates = [threading.Event() for _ in self.PIECES]
        self.words: list = []

    def summarize_batch(self, items, words=None, on_text=None):
        self.words.append(words)
        for piece, gate in zip(self.PIECES, self.gates):
            for i in range(len(items)):
                on_text(i, piece)
            gate.wait(timeout=60)
        return self.inner.summarize_batch(items, words)


def test_an_answer_grows_as_it_is_written_then_the_finished_answer_replaces_it(browser):
    writing = WritingPipeline(Pipeline.load("extractive-bm25"))
    with serve_in_thread(create_app(writing, ServerConfig(max_wait_ms=0, deadline_s=600))) as url:
        try:
            watch_the_answer_being_written(browser, url, writing)
        finally:
            for gate in writing.gates:  # never leave the model thread waiting
                gate.set()
    assert writing.words == [[40]]


def watch_the_answer_being_written(browser, url: str, writing: WritingPipeline) -> None:
    """Ask one question with a length; see its text grow, marked "writing…", then the finished answer."""
    page = open_page(browser, url)
    sent = posts(page)
    page.locator("#pipeline").filter(has_text="generated answers").wait_for(timeout=30_000)
    page.fill("#words", "40")
    ask(page, ["What happened to the bridge budget?"])
    card = page.locator(".answer.writing")
    card.locator(".summary").filter(has_text=writing.PIECES[0].strip()).wait_for(timeout=60_000)
    assert card.locator(".kind").inner_text() == "writing…"
    assert card.locator(".summary").inner_text().strip() == writing.PIECES[0].strip()  # no citations, no flags yet
    writing.gates[0].set()
    card.locator(".summary").filter(has_text="".join(writing.PIECES)).wait_for(timeout=60_000)  # it grew
    assert page.locator(".answer.pending").count() == 1 and page.locator("#ask").is_disabled()
    writing.gates[1].set()
    answered(page, 1)
    final = page.locator(".answer")
    assert page.locator(".answer.writing, .answer.pending").count() == 0
    assert "bridge" in final.locator(".summary").inner_text()
    assert "first words" not in final.locator(".summary").inner_text()  # replaced by the finished answer
    assert final.locator(".kind").inner_text().startswith("Generated by a model")
    assert page.inner_text("#status").startswith("1 answered ·")
    page.close()
    assert sent[0]["body"]["options"] == {"include_document": True, "words": 40}


def test_an_answer_length_the_server_would_refuse_is_not_sent(page):
    sent = posts(page)
    page.fill("#words", "5")
    ask(page, ["What happened to the bridge budget?"])
    assert page.inner_text("#error").startswith("The answer length is a whole number of words from 10 to 400")
    assert sent == []
