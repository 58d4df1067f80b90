"""PDF, HTML and DOCX documents, by extension, content and stdin, and http(s) URLs from a local server.

Every file is made here: PDFs by hand (a few objects and an xref table), DOCX with python-docx, HTML
as text. The URL tests serve pages from a `http.server` on 127.0.0.1 in a thread.
"""

from __future__ import annotations

import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import assert_one_error_line, cli

from qfsum import QfsumError
from qfsum.budget import WordCounter, select_under_budget
from qfsum.document import Document, Evidence
from qfsum.formats import detect_format
from qfsum.formats.fetch import fetch
from qfsum.formats.pdf import reflow
from qfsum.readers import document_from_bytes, read_document
from qfsum.segment import Segmenter, SegmenterConfig

# -- files made here ----------------------------------------------------------------------------

PAGES = [
    ["Library report",
     "The council met on Monday and decided to repair the library roof in",
     "March, for forty thousand euros, with the work to last six weeks.",
     "Anna Berg presented it.",
     "",
     "The regional fund pays half of the cost and the town pays the rest from",
     "its maintenance budget.",
     "1"],
    ["The reading room closes during the work; a temporary room opens in the",
     "town hall with the same opening hours.",
     "2"],
    [],  # a blank page: no text layer
    ["Next steps: Omar Haddad orders the tiles before the end of February.", "4"],
]

HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Library roof repair | Town News</title>
<style>body { font-family: sans-serif }</style>
<script>window.tracker = "SCRIPT-NOISE";</script></head>
<body>
<header><nav><ul><li><a href="/">NAV-HOME</a></li><li><a href="/news">NAV-NEWS</a></li></ul></nav></header>
<article>
<h1>Library roof repair</h1>
<p>The town council decided on Monday to repair the library roof in March. The work will cost forty
thousand euros and take six weeks.</p>
<p>The reading room will close during the work. A temporary reading room opens in the town hall, with
the same opening hours as before.</p>
<h2>Who pays</h2>
<p>The regional fund pays half of the cost; the town pays the rest from its maintenance budget, which
the council raised last year.</p>
<ul><li>Start: 3 March</li><li>End: mid-April</li></ul>
</article>
<footer><p>FOOTER-NOISE Copyright 2026 Town News. All rights reserved.</p></footer>
</body></html>
"""


def make_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per list of lines, Helvetica 11 pt, 14 pt apart (an empty line is a gap)."""
    objects: list[bytes] = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    contents = []
    for lines in pages:
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        stream = "\n".join(ops + ["ET"]).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        contents.append(len(objects))
    tree = len(objects) + len(pages) + 1  # the /Pages object comes after the page objects
    for content in contents:
        objects.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 1 0 R >> >> >>" % (tree, content))
    kids = b" ".join(b"%d 0 R" % (tree - len(pages) + i) for i in range(len(pages)))
    objects.append(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)))
    objects.append(b"<< /Type /Catalog /Pages %d 0 R >>" % tree)
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, len(objects), xref)
    return bytes(out)


def make_docx() -> bytes:
    import docx

    word = docx.Document()
    word.add_heading("Library report", level=1)
    word.add_paragraph("The council decided to repair the library roof in March.")
    table = word.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "Item", (0, 1): "Cost", (1, 0): "Roof", (1, 1): "30,000"}.items():
        table.cell(row, col).text = text
    word.add_paragraph("Omar Haddad orders the tiles.", style="List Bullet")
    out = io.BytesIO()
    word.save(out)
    return out.getvalue()


def check_offsets(document: Document) -> None:
    assert document.units
    for i, unit in enumerate(document.units):
        assert unit.index == i
        assert document.text[unit.start : unit.end] == unit.text


# -- PDF ----------------------------------------------------------------------------------------


@pytest.fixture
def pdf_path(tmp_path):
    path = tmp_path / "report.pdf"
    path.write_bytes(make_pdf(PAGES))
    return path


def test_pdf_text_is_read_with_its_pages(pdf_path):
    document, queries = read_document(pdf_path)
    assert queries == [] and document.id == "report"
    check_offsets(document)
    texts = [u.text for u in document.units]
    assert texts[0] == "Library report"
    # lines reflowed into paragraphs; bare page numbers dropped
    assert ("The council met on Monday and decided to repair the library roof in March, for forty thousand euros, "
            "with the work to last six weeks.") in texts[1]
    assert not any(t.strip().isdigit() for t in texts)
    page_of = {words: next(u.page for u in document.units if words in u.text)
               for words in ("Library report", "council met", "regional fund", "reading room closes", "tiles")}
    assert page_of == {"Library report": 1, "council met": 1, "regional fund": 1, "reading room closes": 2, "tiles": 4}
    assert len(document.page_starts) == 4 and document.page_starts[2] == document.page_starts[3]  # page 3 is blank
    assert document.page_at(document.units[-1].start) == 4


def test_pdf_evidence_knows_its_page(pdf_path):
    from qfsum import Pipeline

    document, _ = read_document(pdf_path)
    summary = Pipeline.load("extractive-bm25").summarize(document, "Who orders the tiles?")
    assert summary.evidence
    for item in summary.evidence:
        data = item.to_dict()
        assert document.text[data["start"] : data["end"]] == data["text"] == item.segment.text
        assert data["page"] == document.page_at(data["start"])
    best = max(summary.evidence, key=lambda e: e.score).to_dict()
    assert "tiles" in best["text"] and best["page"] == 4


def test_windows_and_budget_pieces_keep_their_pages(pdf_path):
    document, _ = read_document(pdf_path)
    windows = Segmenter(SegmenterConfig(kind="window", size=12, stride=6))(document)
    assert {w.page for w in windows} == {1, 2, 4}
    crossing = [w for w in windows if w.last_page != w.page]
    assert crossing, "some window runs from one page onto the next"
    assert all(Evidence(w, 1.0).to_dict()["last_page"] == w.last_page for w in crossing)
    # overlapping windows cost only their new text: the pieces and joins must keep the pages
    chosen = select_under_budget([Evidence(w, 1.0) for w in windows[::-1]], 60, WordCounter())
    assert len(chosen) < len(windows)
    for item in chosen:
        assert item.segment.page == document.page_at(item.segment.start)
        assert item.segment.last_page == document.page_at(item.segment.end - 1)


def test_text_documents_have_no_pages(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("First paragraph.\n\nSecond paragraph.\n")
    document, _ = read_document(path)
    assert document.page_starts == () and document.units[0].page is None
    assert "page" not in Evidence(document.units[0], 1.0).to_dict()


def test_same_text_with_pages_is_another_document(pdf_path):
    document, _ = read_document(pdf_path)
    plain = Document(document.text, list(document.units), "plain")
    assert plain.fingerprint != document.fingerprint  # cached segments (which carry pages) are not shared


@pytest.mark.parametrize(
    ("lines", "paragraphs"),
    [
        (["Title", "a long line of body text that goes on and on to the", "right margin and ends here.", "Next one."],
         ["Title", "a long line of body text that goes on and on to the right margin and ends here.", "Next one."]),
        (["Items we agreed on at the meeting of the council last week:", "• tiles", "• gutters"],
         ["Items we agreed on at the meeting of the council last week:", "• tiles", "• gutters"]),
        (["a well-known and much dis-", "cussed plan to repair the roof of the library", "12"],
         ["a well-known and much dis-cussed plan to repair the roof of the library"]),
        (["one paragraph", "", "another"], ["one paragraph", "another"]),
        (["", "  ", "7"], []),
    ],
)
def test_reflow_rebuilds_paragraphs_from_lines(lines, paragraphs):
    assert reflow("\n".join(lines)) == paragraphs


def test_pdf_is_recognised_by_content_whatever_its_name(tmp_path):
    path = tmp_path / "report.txt"
    path.write_bytes(make_pdf(PAGES))
    document, _ = read_document(path)
    assert document.page_starts and "tiles" in document.text


def test_pdf_without_text_layer_is_a_user_error(tmp_path, capsys):
    path = tmp_path / "scan.pdf"
    path.write_bytes(make_pdf([[], []]))
    code, _, err = cli(capsys, "summarize", path, "-q", "budget", "-p", "extractive-bm25")
    assert "scan.pdf: the PDF has no text layer" in assert_one_error_line(code, err)


@pytest.mark.parametrize("cut", [20, 300, -40])
def test_damaged_pdf_is_a_user_error(tmp_path, capsys, cut):
    data = make_pdf(PAGES)
    path = tmp_path / "broken.pdf"
    path.write_bytes(data[:cut])
    code, _, err = cli(capsys, "summarize", path, "-q", "budget", "-p", "extractive-bm25")
    line = assert_one_error_line(code, err)
    assert "broken.pdf: " in line and "PDF" in line


def test_password_protected_pdf_is_a_user_error(tmp_path, capsys):
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(make_pdf(PAGES))).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as out:
        writer.write(out)
    code, _, err = cli(capsys, "summarize", path, "-q", "budget", "-p", "extractive-bm25")
    assert "locked.pdf: the PDF is password-protected" in assert_one_error_line(code, err)


def test_pdf_on_stdin(monkeypatch, capsys):
    import json
    import sys

    class Stdin:
        buffer = io.BytesIO(make_pdf(PAGES))

    monkeypatch.setattr(sys, "stdin", Stdin())
    code, out, err = cli(capsys, "summarize", "-", "-q", "Who orders the tiles?", "-p", "extractive-bm25", "--json")
    assert code == 0, err
    evidence = json.loads(out)[0]["evidence"]
    assert any("tiles" in e["text"] and e["page"] == 4 for e in evidence)


# -- HTML ---------------------------------------------------------------------------------------


def test_html_main_content_without_boilerplate(tmp_path):
    path = tmp_path / "roof.html"
    path.write_text(HTML_PAGE)
    document, _ = read_document(path)
    check_offsets(document)
    assert document.units[0].text == "Library roof repair"  # the title, once (the heading says the same)
    assert document.text.count("Library roof repair") == 1
    for noise in ("SCRIPT-NOISE", "NAV-HOME", "FOOTER-NOISE", "font-family", "<p>", "</"):
        assert noise not in document.text
    assert "forty thousand euros" in document.text and "maintenance budget" in document.text
    assert any(u.text == "- Start: 3 March\n- End: mid-April" for u in document.units)  # a list is one unit
    assert document.page_starts == ()


def test_html_title_is_kept_when_the_content_does_not_start_with_it(tmp_path):
    page = HTML_PAGE.replace("<h1>Library roof repair</h1>", "")
    document = document_from_bytes(page.encode(), "page", "page", name="page.html")
    assert document.units[0].text == "Library roof repair | Town News"


def test_html_in_another_encoding_is_decoded():
    page = HTML_PAGE.replace('charset="utf-8"', 'charset="iso-8859-1"').replace("six weeks", "six semaines à Orléans")
    document = document_from_bytes(page.encode("latin-1"), "page", "page", name="page.htm")
    assert "six semaines à Orléans" in document.text


def test_html_is_recognised_by_content_and_on_stdin(tmp_path, monkeypatch, capsys):
    import json
    import sys

    path = tmp_path / "saved-page.txt"
    path.write_text(HTML_PAGE)
    assert "NAV-HOME" not in read_document(path)[0].text

    class Stdin:
        buffer = io.BytesIO(HTML_PAGE.encode())

    monkeypatch.setattr(sys, "stdin", Stdin())
    code, out, err = cli(capsys, "summarize", "-", "-q", "Who pays for the roof?", "-p", "extractive-bm25", "--json")
    assert code == 0, err
    answer = json.loads(out)[0]
    assert "regional fund" in answer["summary"]
    assert "<" not in answer["summary"] and "NAV-HOME" not in answer["summary"]


def test_html_without_text_is_a_user_error(tmp_path, capsys):
    path = tmp_path / "empty.html"
    path.write_text("<html><head><script>x = 1</script></head><body><nav></nav></body></html>")
    code, _, err = cli(capsys, "summarize", path, "-q", "budget", "-p", "extractive-bm25")
    assert "empty.html: no text found" in assert_one_error_line(code, err)


# -- DOCX ---------------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables(tmp_path):
    path = tmp_path / "minutes.docx"
    path.write_bytes(make_docx())
    document, _ = read_document(path)
    check_offsets(document)
    assert [u.text for u in document.units] == [
        "Library report",
        "The council decided to repair the library roof in March.",
        "Item | Cost\nRoof | 30,000",
        "Omar Haddad orders the tiles.",
    ]
    renamed = tmp_path / "minutes.bin"
    renamed.write_bytes(make_docx())
    assert read_document(renamed)[0].text == document.text  # recognised by content too


def test_docx_merged_cells_once_equal_cells_each():
    import docx

    word = docx.Document()
    table = word.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Roof and gutters"
    table.cell(0, 2).text = "40,000"
    for col in range(3):
        table.cell(1, col).text = "0"
    out = io.BytesIO()
    word.save(out)
    document = document_from_bytes(out.getvalue(), "t.docx", "t", name="t.docx")
    assert document.text == "Roof and gutters | 40,000\n0 | 0 | 0"


def test_damaged_docx_is_a_user_error(tmp_path, capsys):
    not_zip = tmp_path / "a.docx"
    not_zip.write_bytes(b"this is not a zip archive at all")
    code, _, err = cli(capsys, "summarize", not_zip, "-q", "budget", "-p", "extractive-bm25")
    assert "a.docx: not a readable DOCX file" in assert_one_error_line(code, err)

    other_zip = tmp_path / "b.docx"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    other_zip.write_bytes(buffer.getvalue())
    code, _, err = cli(capsys, "summarize", other_zip, "-q", "budget", "-p", "extractive-bm25")
    assert "b.docx: not a readable DOCX file" in assert_one_error_line(code, err)


# -- detection and unknown binaries -------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "content_type", "kind"),
    [
        (b"%PDF-1.7\n...", "", None, "pdf"),
        (b"\x00\x01junk then %PDF-1.4", "x.txt", None, "pdf"),
        (b"\xef\xbb\xbf\n  <!DOCTYPE HTML><html>", "", None, "html"),
        (b'<?xml version="1.0"?>\n<html xmlns="http://www.w3.org/1999/xhtml">', "", None, "html"),
        (b"<body><p>hi</p></body>", "", None, "html"),
        (b"plain words", "page.HTM", None, "html"),
        (b"plain words", "", "text/html; charset=utf-8", "html"),
        (b"plain words", "notes.md", None, None),
        (b"plain words with <html> later", "", "text/plain", None),
        (b"PK\x03\x04 not really a zip", "x.zip", None, None),
    ],
)
def test_detect_format(data, name, content_type, kind):
    assert detect_format(data, name, content_type) == kind


def test_unknown_binary_is_still_refused(tmp_path, capsys):
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    code, _, err = cli(capsys, "summarize", path, "-q", "budget", "-p", "extractive-bm25")
    assert "image.png: looks like a binary file" in assert_one_error_line(code, err)


try:  # hypothesis is in the `test` extra; without it the fuzz test below is left out
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:
    given = None

if given is not None:
    _PREFIXES = [b"%PDF-1.4\n", b"PK\x03\x04", b"<!DOCTYPE html><html><body>", make_pdf(PAGES)[:400]]

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(prefix=st.sampled_from(_PREFIXES), tail=st.binary(max_size=300),
           name=st.sampled_from(["x.pdf", "x.html", "x.docx", "x"]))
    def test_any_bytes_read_or_fail_with_a_user_error(prefix, tail, name):
        try:
            document = document_from_bytes(prefix + tail, name, "x", name=name)
        except QfsumError as err:
            assert "\n" not in str(err)
        else:
            check_offsets(document)


# -- URLs ---------------------------------------------------------------------------------------


class _Site(BaseHTTPRequestHandler):
    """/roof.html, /report.pdf, /notes.txt (Latin-1), /image.png, /huge, /slow, /to-ftp; 404 otherwise."""

    release = threading.Event()  # /slow answers only once the test is over

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        routes = {
            "/roof.html": ("text/html; charset=utf-8", HTML_PAGE.encode()),
            "/report.pdf": ("application/pdf", make_pdf(PAGES)),
            "/notes.txt": ("text/plain; charset=iso-8859-1", "Caf\u00e9 budget: the roof.\n".encode("latin-1")),
            "/image.png": ("image/png", b"\x89PNG\r\n\x1a\n"),
        }
        if self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()  # no Content-Length: the reader must stop by itself
            for _ in range(64):
                self.wfile.write(b"x" * 64 * 1024)
            return
        if self.path == "/slow":
            self.release.wait(10)
            return
        if self.path == "/to-ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/file.txt")
            self.end_headers()
            return
        if self.path not in routes:
            self.send_error(404, "Not Found")
            return
        content_type, body = routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a client that hung up on /huge: expected
        pass


@contextmanager
def _serve() -> Iterator[str]:
    server = _Server(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _Site.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def site(monkeypatch) -> Iterator[str]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # the local server, never a proxy
    _Site.release.clear()
    with _serve() as url:
        yield url


def test_summarize_a_web_page(site, capsys):
    import json

    code, out, err = cli(capsys, "summarize", f"{site}/roof.html", "-q", "Who pays for the roof?", "-p", "extractive",
                         "--json")
    assert code == 0, err
    answer = json.loads(out)[0]
    assert "regional fund" in answer["summary"]
    assert "NAV-HOME" not in out and "FOOTER-NOISE" not in out
    document, _ = read_document(f"{site}/roof.html")
    assert document.id == "roof"
    for item in answer["evidence"]:
        assert document.text[item["start"] : item["end"]] == item["text"]


def test_pdf_and_text_urls(site):
    pdf, _ = read_document(f"{site}/report.pdf")
    assert pdf.page_starts and pdf.units[-1].page == 4
    text, _ = read_document(f"{site}/notes.txt")
    assert text.text == "Caf\u00e9 budget: the roof.\n"  # decoded in the charset the server named


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/missing.html", "HTTP 404"),
        ("/image.png", "the server sent image/png"),
        ("/to-ftp", "not an http(s) URL"),
    ],
)
def test_url_failures_are_one_line_errors(site, capsys, path, message):
    code, _, err = cli(capsys, "summarize", f"{site}{path}", "-q", "budget", "-p", "extractive-bm25")
    assert message in assert_one_error_line(code, err)


def test_url_size_limit_and_timeout(site):
    with pytest.raises(QfsumError, match="over the 1 MB limit"):
        fetch(f"{site}/huge", max_bytes=2**20)
    with pytest.raises(QfsumError, match="no answer"):
        fetch(f"{site}/slow", timeout=0.5)  # the server never answers before the test ends


def test_refused_connection_and_other_schemes(capsys):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = cli(capsys, "summarize", f"http://127.0.0.1:{port}/x.html", "-q", "budget", "-p", "extractive-bm25")
    assert "connection refused" in assert_one_error_line(code, err)
    for url in ("ftp://example.org/report.pdf", "file:///etc/hostname"):
        code, _, err = cli(capsys, "summarize", url, "-q", "budget", "-p", "extractive-bm25")
        assert "only http:// and https:// URLs" in assert_one_error_line(code, err)
    code, _, err = cli(capsys, "summarize", "http:///nohost", "-q", "budget", "-p", "extractive-bm25")
    assert "not a valid URL" in assert_one_error_line(code, err)
