"""The web page end to end in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Set QFSUM_WEB_SCREENSHOT=docs/web.png (and optionally QFSUM_WEB_PIPELINE=default) to also write
the screenshot the docs show.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("uvicorn")

from conftest import MEETING_B  # noqa: E402
from qfsum import Pipeline  # noqa: E402
from qfsum.serving import ServerConfig, create_app  # noqa: E402
from qfsum.serving.server import serve_in_thread  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
FILLER = "The committee discussed the weather, the minutes of the last meeting and the coffee rota."
LONG_TEXT = "\n\n".join([FILLER] * 80 + ["The budget for the new bridge was cut by ten percent because steel prices rose."])

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server_url():
    pipeline = Pipeline.load(os.environ.get("QFSUM_WEB_PIPELINE", "extractive-bm25"))
    with serve_in_thread(create_app(pipeline, ServerConfig(deadline_s=600))) as url:  # slow CPUs: no 504s
        yield url


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
    assert page.inner_text("#status").startswith("2 of 2 answered")
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
    page.locator("#status").filter(has_text="1 of 1 answered").wait_for(timeout=60_000)
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

    start = LONG_TEXT.index("The budget")
    crafted = {"id": "document", "answers": [{
        "query": "What happened?", "summary": "The bridge budget was cut. It was 1.3 million.",
        "sentences": [
            {"text": "The bridge budget was cut.", "start": 0, "end": 26, "citations": [0], "support": 0.9, "supported": True},
            {"text": "It was 1.3 million.", "start": 27, "end": 46, "citations": [0], "support": 0.1, "supported": False},
        ],
        "evidence": [{"segment": 80, "score": 1.0, "start": start, "end": len(LONG_TEXT), "text": LONG_TEXT[start:]}],
        "timings": {"total_ms": 1.0}, "batch_size": 1,
    }]}
    page.route("**/v1/summarize", lambda route: route.fulfill(json=crafted))
    page.fill(".question-input", "What happened?")
    page.click("#ask")
    page.locator(".answer .summary .flag").first.wait_for(timeout=30_000)
    assert page.locator(".answer .sentence.unsupported").inner_text() == "It was 1.3 million."
    assert page.locator(".answer .summary .cite").count() == 1  # the supported sentence only
