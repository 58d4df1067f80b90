"""The text output of `qfsum summarize` shows the page of each evidence segment of a paged source (PDF)."""

from __future__ import annotations

import re

from conftest import cli
from test_formats import PAGES, make_pdf

from qfsum.cli.summarize import page_label, print_evidence
from qfsum.document import Document, Evidence, Segment
from qfsum.pipeline import Summary

TEXT = "First page text here. Second page starts and runs on to the third. Third page."
PAGE_STARTS = (0, TEXT.index("Second"), TEXT.index("to the third"))


def _segment(words: str, paged: bool = True):
    start = TEXT.index(words)
    document = Document(TEXT, page_starts=PAGE_STARTS if paged else ())
    return Segment(0, words, start, start + len(words), page_starts=document.page_starts)


def test_page_label():
    assert page_label(_segment("First page")) == "  p. 1"
    assert page_label(_segment("Second page starts")) == "  p. 2"
    assert page_label(_segment("Second page starts and runs on to the third")) == "  pp. 2-3"
    assert page_label(_segment("First page", paged=False)) == ""


def test_print_evidence_shows_pages(capsys):
    evidence = [Evidence(_segment("First page text"), 0.5), Evidence(_segment("runs on to the third."), 0.9)]
    print_evidence(Summary("q", "a", evidence, {"total_ms": 1.0}))
    lines = capsys.readouterr().out.splitlines()[1:]
    assert re.search(r"\[1\] chars \d+-\d+  p\. 1  rank #2  First page text", lines[0])
    assert re.search(r"\[2\] chars \d+-\d+  pp\. 2-3  rank #1  runs on", lines[1])


def test_plain_text_evidence_has_no_page(capsys):
    print_evidence(Summary("q", "a", [Evidence(_segment("First page", paged=False), 1.0)], {"total_ms": 1.0}))
    assert "p. " not in capsys.readouterr().out


def test_summarize_a_pdf_prints_the_page(tmp_path, capsys):
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf(PAGES))
    code, out, err = cli(capsys, "summarize", path, "-q", "Who orders the tiles?", "-p", "extractive-bm25",
                         "--grounding", "off")
    assert code == 0, err
    tiles = [line for line in out.splitlines() if "tiles" in line and "chars" in line]
    assert tiles and all(re.search(r"chars \d+-\d+  p\. 4  rank", line) for line in tiles)  # the tiles are on page 4
