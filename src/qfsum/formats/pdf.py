"""PDF: the text layer of each page (pypdf), lines reflowed into paragraphs, pages kept.

pypdf gives each page's text as lines in content order (which keeps columns apart), with no mark
between paragraphs. `reflow` rebuilds paragraphs from the lines' lengths and endings; the text that
evidence offsets index is that reflowed text. Scanned pages have no text layer: there is no OCR.
"""

from __future__ import annotations

import io
import re

from ..document import Document
from ..errors import QfsumError
from .blocks import document_from_pages
from .logs import quiet

_LIGATURES = str.maketrans({"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
                            "\ufb05": "st", "\ufb06": "st", "\u00ad": ""})  # \u00ad: soft hyphen
_SENTENCE_END = re.compile(r"""[.!?:;…]["')\]’”]*$""")
_BULLET = re.compile(r"^(?:[•●▪◦‣∙·*\-–—]\s|\(?\d{1,3}[.)]\s|\(?[a-z][.)]\s)")
_PAGE_NUMBER = re.compile(r"^(?:page\s+)?\d{1,5}(?:\s*(?:/|of)\s*\d{1,5})?$", re.IGNORECASE)
SHORT_LINE = 0.8  # a line under 80 % of the page's usual width ends its paragraph if it ends a sentence
HEADING_LINE = 0.6  # ... and under 60 % even without a full stop (a heading, a list's last item)


def pdf_document(data: bytes, source: str, id: str) -> Document:
    """A PDF's text layer as a document: paragraphs as units, `page_starts` for its pages."""
    pages = [reflow(text) for text in page_texts(data, source)]
    if not any(pages):
        raise QfsumError(f"{source}: the PDF has no text layer (a scan? run OCR on it first)")
    return document_from_pages(pages, id, source, paged=True)


def page_texts(data: bytes, source: str) -> list[str]:
    """The raw text of each page, with one-line errors for files pypdf cannot open or decrypt."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    with quiet("pypdf"):
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):  # many PDFs are "encrypted" with no password
                raise QfsumError(f"{source}: the PDF is password-protected")
            return [(page.extract_text() or "").translate(_LIGATURES) for page in reader.pages]
        except QfsumError:
            raise
        except (DependencyError, FileNotDecryptedError):
            raise QfsumError(f"{source}: the PDF is encrypted in a way qfsum cannot read") from None
        # A damaged or hostile file can make the parser fail in many ways (PdfReadError, KeyError,
        # ValueError, RecursionError...): each is this input's fault, so each is one line for the user.
        except Exception as err:  # noqa: BLE001
            reason = " ".join(str(err).split())[:120] or type(err).__name__
            raise QfsumError(f"{source}: not a readable PDF ({reason})") from None


def reflow(page: str) -> list[str]:
    """A page's lines as paragraphs: a line joins the next unless it ends one.

    A line ends its paragraph when a blank line follows, when the next line starts a list item,
    when it ends a sentence and is shorter than the page's usual line (the last line of a paragraph),
    or when it is much shorter still (a heading) and does not end in "-" or ",". Bare page numbers
    are dropped. A hyphen at a line's
    end is kept and the word joined without a space ("well-known"; "exam-ple" stays so).
    """
    lines = [" ".join(line.split()) for line in page.split("\n")]
    lengths = sorted(len(line) for line in lines if line)
    if not lengths:
        return []
    # a full line's length: near the longest, as most lines of a page run to the margin (few: the longest)
    width = lengths[int(0.9 * (len(lengths) - 1))] if len(lengths) >= 10 else lengths[-1]
    paragraphs: list[str] = []
    current = ""
    for i, line in enumerate(lines):
        if not line or _PAGE_NUMBER.match(line):
            if current and not line:
                paragraphs.append(current)
                current = ""
            continue
        current = _join(current, line) if current else line
        following = next((n for n in lines[i + 1 :] if not _PAGE_NUMBER.match(n)), "")  # "" if blank or last
        ends_sentence = bool(_SENTENCE_END.search(line))
        carries_on = line.endswith(("-", ","))  # a hyphenated word or a clause goes on, however short
        if (
            not following
            or _BULLET.match(following)
            or (ends_sentence and len(line) < SHORT_LINE * width)
            or (not carries_on and len(line) < HEADING_LINE * width)
        ):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return paragraphs


def _join(text: str, line: str) -> str:
    return text + line if text.endswith("-") and text[-2:-1].isalpha() else f"{text} {line}"
