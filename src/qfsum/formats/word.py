"""DOCX: the body's paragraphs and tables in order (python-docx); headers, footers, notes left out."""

from __future__ import annotations

import io
import zipfile

from ..document import Document
from ..errors import QfsumError
from .blocks import document_from_pages

MAX_UNZIPPED_BYTES = 512 * 2**20  # a .docx is a ZIP: refuse one that would inflate past this (a ZIP bomb)


def docx_document(data: bytes, source: str, id: str) -> Document:
    """A Word document's paragraphs (headings, list items) and tables (a row a line) as a document."""
    _check_archive(data, source)
    import docx
    from docx.table import Table

    try:
        word = docx.Document(io.BytesIO(data))
        blocks = []
        for item in word.iter_inner_content():
            if isinstance(item, Table):
                blocks.append("\n".join(" | ".join(_cells(row)) for row in item.rows))
            else:
                blocks.append(item.text)
    # python-docx fails on damaged files in many ways (KeyError for a missing part, lxml's
    # XMLSyntaxError, ValueError...): each is this input's fault, one line for the user.
    except Exception as err:  # noqa: BLE001
        reason = " ".join(str(err).split())[:120] or type(err).__name__
        raise QfsumError(f"{source}: not a readable DOCX file ({reason})") from None
    return document_from_pages([blocks], id, source, paged=False)


def _cells(row) -> list[str]:
    """A table row's cell texts; a merged cell appears once, not once per grid column it spans."""
    texts: list[str] = []
    previous = None
    for cell in row.cells:
        if previous is None or cell._tc is not previous._tc:  # a merged cell repeats its XML element
            texts.append(" ".join(cell.text.split()))
        previous = cell
    return texts


def _check_archive(data: bytes, source: str) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            size = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise QfsumError(f"{source}: not a readable DOCX file (not a ZIP archive)") from None
    if size > MAX_UNZIPPED_BYTES:
        raise QfsumError(f"{source}: the DOCX file unpacks to {size / 2**20:.0f} MB, over the "
                         f"{MAX_UNZIPPED_BYTES // 2**20} MB limit")
