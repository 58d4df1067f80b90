"""Documents in the formats people have: PDF (text layer), HTML (main content) and DOCX.

Each reader turns the file's bytes into blocks of text (paragraphs, headings, list items), and
`blocks.document_from_pages` joins them into a plain-text `Document` whose units are the blocks, so
evidence offsets index the extracted text exactly as for a .txt file. A PDF keeps its pages
(`Document.page_starts`), and every segment cut from it knows its page.

The parsing libraries are imported only when a file of their format is read.
"""

from __future__ import annotations

from ..document import Document
from .sniff import FORMATS, detect_format, is_url


def read_format(kind: str, data: bytes, source: str, id: str) -> Document:
    """Read `data` (the bytes of `source`) as a document of format `kind` (one of `FORMATS`)."""
    if kind == "pdf":
        from .pdf import pdf_document

        return pdf_document(data, source, id)
    if kind == "html":
        from .html_page import html_document

        return html_document(data, source, id)
    if kind == "docx":
        from .word import docx_document

        return docx_document(data, source, id)
    raise ValueError(f"unknown format {kind!r}")  # a caller's bug, not the user's


__all__ = ["FORMATS", "detect_format", "is_url", "read_format"]
