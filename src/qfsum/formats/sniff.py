"""Which format a document is in: its magic bytes first, then its name, then the server's word."""

from __future__ import annotations

import io
import re
import zipfile

FORMATS = ("pdf", "html", "docx")
_EXTENSIONS = {".pdf": "pdf", ".html": "html", ".htm": "html", ".xhtml": "html", ".docx": "docx"}
_CONTENT_TYPES = {
    "application/pdf": "pdf",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}
_HTML_START = (b"<!doctype html", b"<html", b"<head", b"<body")
_HTML_TAG = re.compile(rb"<html[\s>]")
_LEADING = b"\xef\xbb\xbf \t\r\n\x0c"  # UTF-8 BOM and whitespace before the first tag
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def detect_format(data: bytes, name: str = "", content_type: str | None = None) -> str | None:
    """"pdf", "html" or "docx", or None for anything else (read as plain text, or refused as binary).

    Content wins over the name: a PDF saved as .txt is still a PDF, and HTML piped on stdin is HTML.
    """
    head = data[:1024]
    if b"%PDF-" in head:  # the spec allows junk before the header, within the first 1024 bytes
        return "pdf"
    if head.startswith(b"PK\x03\x04") and _is_docx(data):
        return "docx"
    start = head.lstrip(_LEADING)[:512].lower()
    if start.startswith(_HTML_START) or (start.startswith((b"<?xml", b"<!--")) and _HTML_TAG.search(start)):
        return "html"
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if content_type:
        return _CONTENT_TYPES.get(content_type.split(";", 1)[0].strip().lower())
    return None


def is_url(text: str) -> bool:
    """True for anything written as scheme://... (the reader then fetches http and https only)."""
    return bool(_SCHEME.match(text))


def _is_docx(data: bytes) -> bool:
    """A ZIP archive with a Word main part (other ZIPs, such as .xlsx or .odt, are not documents here)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
