"""One user, eight questions, the real web page: what the issue saw fail ("five 504s and three 429s").

Starts `qfsum serve --pipeline PIPELINE` on a free port, opens its page in headless Chromium
(Playwright, as tests/test_browser.py does), uploads examples/meeting.txt, asks the eight questions
below at once, waits until the page has settled every one, and prints: answered, failed, the 429s
and 504s seen (HTTP responses the page received, and per-question error lines of the stream), the
wall time from the click to the last answer, and the page's final status text.

    python benchmarks/web_questions.py                          # the default pipeline (minutes on 2 cores)
    python benchmarks/web_questions.py --pipeline extractive    # quick

Run it on an idle machine: the wall time is the figure to report. Exit code 0 when all eight were
answered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MEETING = ROOT / "examples" / "meeting.txt"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
STREAM = "/v1/summarize/stream"
QUESTIONS = [  # about examples/meeting.txt: decisions, figures, dates, people, and one it does not answer
    "How much over budget is the project after the structural survey, and why?",
    "How will the budget gap be closed?",
    "What was decided about the furniture for the study area?",
    "When will the reading room close and reopen?",
    "What will replace the reading room over the summer, and what does it cost?",
    "Who writes the heritage fund application, and by when?",
    "Where does the children's section move to, and why?",
    "What was postponed to a second phase?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(pipeline: str, port: int, threads: str | None, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "qfsum.cli", "serve", "--pipeline", pipeline, "--port", str(port)]
    if threads:
        command += ["--threads", threads]
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT)


def wait_until_up(server: subprocess.Popen, url: str, timeout_s: float, log: Path) -> None:
    """Poll GET /info until the server answers (it loads the pipeline first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"web_questions: the server exited with code {server.returncode}:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/info", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"web_questions: the server did not answer within {timeout_s:.0f} s")


def run_page(url: str, timeout_s: float) -> dict:
    """Drive the page; return the counts, the wall time and the final status text."""
    from playwright.sync_api import sync_playwright

    statuses: list[int] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # bypass_csp: Playwright polls with eval, which the page's CSP forbids; the page's own scripts are unchanged
        page = browser.new_page(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        page.on("response", lambda r: statuses.append(r.status) if r.url.endswith(STREAM) else None)
        page.goto(url)
        page.wait_for_selector("#limits:not(:has-text('Asking'))")  # the page knows the server's limits
        page.set_input_files("#file", str(MEETING))
        page.wait_for_function("document.querySelector('#doc').textContent.length > 0")
        for i, question in enumerate(QUESTIONS):
            if i:
                page.click("#add-question")
            page.locator(".question-input").nth(i).fill(question)
        started = time.perf_counter()
        page.click("#ask")
        page.wait_for_function("['done', 'failed'].includes(document.querySelector('#progress-box').dataset.state)"
                               " && !document.querySelector('#ask').disabled", timeout=timeout_s * 1000, polling=200)
        wall = time.perf_counter() - started
        cards = page.locator(".answer")
        errors = [cards.nth(i).inner_text() for i in range(cards.count())
                  if "failed" in (cards.nth(i).get_attribute("class") or "")]
        result = {
            "answered": cards.count() - len(errors),
            "failed": len(errors),
            # HTTP refusals of the stream request (the page retries 429s), and per-question error lines
            "429s": statuses.count(429) + sum(bool(re.search(r"\b429:", e)) for e in errors),
            "504s": statuses.count(504) + sum(bool(re.search(r"\b504:", e)) for e in errors),
            "stream_requests": len(statuses),
            "wall_s": round(wall, 1),
            "status": page.inner_text("#status"),
        }
        browser.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", default="default", help="what `qfsum serve --pipeline` serves (default: default)")
    parser.add_argument("--threads", default=None, help="passed to `qfsum serve --threads` (default: its own choice)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds to wait for all answers (default 1200)")
    parser.add_argument("--startup-timeout", type=float, default=300, help="seconds to wait for the server (default 300)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"web_questions: {CHROMIUM} is missing (apt-get install -y chromium)")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"qfsum-web-questions-{port}.log"
    server = start_server(args.pipeline, port, args.threads, log)
    try:
        wait_until_up(server, url, args.startup_timeout, log)
        result = run_page(url, args.timeout)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    result = {"pipeline": args.pipeline, "questions": len(QUESTIONS), **result}
    if args.json:
        print(json.dumps(result))
    else:
        width = max(map(len, result))
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")
    return 0 if result["answered"] == len(QUESTIONS) else 1


if __name__ == "__main__":
    sys.exit(main())
