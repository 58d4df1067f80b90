"""HTML: the page's main content (trafilatura), navigation, scripts, footers and comments removed.

The title comes first, as its own block, unless the content already starts with it. Each block of
trafilatura's text output (a paragraph, a heading) is a unit; a list or a table is one unit.
"""

from __future__ import annotations

import re

from ..document import Document
from ..errors import QfsumError
from .blocks import document_from_pages
from .logs import quiet

_TABLE_RULE = re.compile(r"^[|:\-\s]+$")  # the "|---|---|" line under a table's header row
_SITE_SEPARATORS = ("|", "-", "–", "—", ":", "·", "•")
_LOGGERS = ("trafilatura", "htmldate", "courlan", "charset_normalizer")


def html_document(data: bytes, source: str, id: str) -> Document:
    """A web page's title and main content as a document (encoding detected from the bytes)."""
    import trafilatura

    with quiet(*_LOGGERS):
        tree = trafilatura.load_html(data)
        if tree is None:
            raise QfsumError(f"{source}: not readable HTML")
        title = page_title(tree)
        # favor_recall: the user chose this page to ask about; losing a paragraph of it costs more
        # than keeping a stray line of boilerplate
        text = trafilatura.extract(tree, output_format="txt", include_comments=False, include_tables=True,
                                   include_links=False, include_images=False, deduplicate=False, favor_recall=True)
        if not text:  # too little for the main-content heuristics (a short page): the plain text instead
            text = trafilatura.baseline(tree)[1]
    blocks = group_lines(text or "")
    if title and not (blocks and _names_it(blocks[0], title)):
        blocks.insert(0, title)
    if not blocks:
        raise QfsumError(f"{source}: no text found in the HTML page")
    return document_from_pages([blocks], id, source, paged=False)


def page_title(tree) -> str:
    """The page's title: Open Graph's (usually without the site's name), else <title>; may be ""."""
    for value in tree.xpath('//meta[@property="og:title"]/@content') + tree.xpath("//title//text()"):
        value = " ".join(str(value).split())
        if value:
            return value
    return ""


def group_lines(text: str) -> list[str]:
    """trafilatura's lines as blocks: one per line, except that a list's items ("- ...") and a
    table's rows ("| ... |") make one block each."""
    blocks: list[str] = []
    kind = None
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            kind = None
            continue
        if line.startswith("|") and _TABLE_RULE.match(line):
            continue
        line_kind = "table" if line.startswith("|") else "list" if line.startswith("- ") else None
        if line_kind and line_kind == kind:
            blocks[-1] += "\n" + line
        else:
            blocks.append(line)
        kind = line_kind
    return blocks


def _names_it(heading: str, title: str) -> bool:
    """True when the content's first block already is the title: the same words, or the title is the
    heading plus the site's name ("Roof repair | Town News")."""
    heading, title = " ".join(heading.split()).casefold(), " ".join(title.split()).casefold()
    return title == heading or (title.startswith(heading) and title[len(heading) :].lstrip()[:1] in _SITE_SEPARATORS)
