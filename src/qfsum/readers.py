"""Readers: plain text, Markdown, JSONL and QMSum meeting files into Documents and Examples;
PDF, HTML and DOCX files (and http(s) URLs) through `qfsum.formats`.

Every reader failure that is the input's fault raises `QfsumError` with a one-line reason
(which file, which line), never a bare traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from .document import Document, Example, Segment
from .errors import QfsumError
from .formats import detect_format, is_url, read_format
from .text import require_unicode

MAX_FILE_BYTES = 64 * 1024 * 1024  # ~10M words; a 600K-token book is ~3 MB
_QMSUM_MARKUP = re.compile(r"\{\s*\w+\s*\}")
_SPACES = re.compile(r"[ \t]+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r]*\n")
_LINE = re.compile(r"[^\n]+")
_PARAGRAPH = re.compile(r"(?:[^\n]|\n(?![ \t\r]*\n))+")


def read_text_file(path: str | Path) -> str:
    """Read a UTF-8 file, with clear errors for missing, huge, binary or undecodable files."""
    return decode_text(read_bytes(path), str(path))


def read_bytes(path: str | Path) -> bytes:
    """Read a file's bytes, with clear errors for missing, huge or unreadable files."""
    path = Path(path)
    if not path.exists():
        raise QfsumError(f"{path}: no such file")
    if path.is_dir():
        raise QfsumError(f"{path}: is a directory, expected a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise QfsumError(f"{path}: file is {size / 2**20:.0f} MB, over the {MAX_FILE_BYTES // 2**20} MB limit")
    try:
        return path.read_bytes()
    except OSError as err:
        raise QfsumError(f"{path}: cannot read ({err.strerror})") from None


def decode_text(data: bytes, source: str = "input") -> str:
    """Decode UTF-8 bytes (BOM allowed); reject binary data with a clear message."""
    nul = data.find(b"\x00")
    if nul >= 0:  # anywhere, not only near the start: text files never hold NUL
        raise QfsumError(f"{source}: looks like a binary file (NUL byte at offset {nul}), expected UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise QfsumError(f"{source}: not valid UTF-8 (byte {err.start})") from None


def parse_json(text: str, where: str) -> Any:
    """`json.loads` with one-line errors for malformed and absurdly nested input (RecursionError)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise QfsumError(f"{where}: malformed JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except RecursionError:
        raise QfsumError(f"{where}: JSON nested too deeply") from None


def paragraph_units(text: str) -> list[Segment]:
    """Natural units of plain text: paragraphs split on blank lines, or lines if there are none."""
    pattern = _PARAGRAPH if _PARAGRAPH_BREAK.search(text) else _LINE
    units = []
    for match in pattern.finditer(text):
        a, b = match.span()
        piece = match.group(0)
        a, b = a + len(piece) - len(piece.lstrip()), b - (len(piece) - len(piece.rstrip()))
        if b > a:
            units.append(Segment(len(units), text[a:b], a, b))
    return units


def document_from_text(text: str, id: str = "document") -> Document:
    """A plain-text document whose units are its paragraphs."""
    if not text.strip():
        raise QfsumError(f"{id}: the document is empty")
    return Document(text, paragraph_units(text), id)


def clean_qmsum(text: str) -> str:
    """Strip QMSum's transcription markup ({vocalsound}, {disfmarker}, ...) and extra spaces."""
    return _SPACES.sub(" ", _QMSUM_MARKUP.sub(" ", text)).strip()


def qmsum_document(meeting: dict[str, Any], id: str) -> Document:
    """A QMSum meeting as a document whose units are its speaker turns, in order."""
    turns = meeting.get("meeting_transcripts")
    if not isinstance(turns, list) or not turns:
        raise QfsumError(f"{id}: not a QMSum meeting (no 'meeting_transcripts' list)")
    if not all(isinstance(t, dict) for t in turns):
        raise QfsumError(f"{id}: every entry of 'meeting_transcripts' must be an object with 'speaker' and 'content'")
    return Document.from_units([(_field(t, "speaker") or None, clean_qmsum(_field(t, "content"))) for t in turns], id)


def _field(record: dict[str, Any], key: str) -> str:
    """A string field; missing or null is empty, numbers become text."""
    value = record.get(key)
    return "" if value is None else str(value).strip()


def qmsum_examples(meeting: dict[str, Any], id: str) -> list[Example]:
    """All queries of a QMSum meeting: general ones (g0, g1, ...) then specific ones (s0, ...)."""
    if not isinstance(meeting, dict):
        raise QfsumError(f"{id}: not a QMSum meeting (expected a JSON object)")
    document = qmsum_document(meeting, id)
    examples = []
    for kind, key in (("g", "general_query_list"), ("s", "specific_query_list")):
        items = meeting.get(key) or []
        if not isinstance(items, list):
            raise QfsumError(f"{id}: '{key}' must be a list of query objects")
        for i, item in enumerate(items):
            try:
                spans = [(int(a), int(b)) for a, b in item.get("relevant_text_span") or []]
                query, answer = item["query"].strip(), item["answer"].strip()
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError):  # OverflowError: int(1e999)
                raise QfsumError(f"{id}: {key}[{i}] needs 'query', 'answer' and [first, last] spans") from None
            require_unicode(query, f"{id}: {key}[{i}].query")
            require_unicode(answer, f"{id}: {key}[{i}].answer")
            examples.append(Example(f"{id}-{kind}{i}", document, query, [answer], spans))
    return examples


def _load_json(path: Path) -> Any:
    return parse_json(read_text_file(path), str(path))


def _jsonl_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    records = []
    # split on "\n" only: str.splitlines() also breaks at U+2028 etc., which JSON strings may hold raw
    for lineno, line in enumerate(read_text_file(path).split("\n"), 1):
        if not line.strip():
            continue
        record = parse_json(line, f"{path}:{lineno}")
        if not isinstance(record, dict):
            raise QfsumError(f"{path}:{lineno}: expected a JSON object")
        records.append((lineno, record))
    if not records:
        raise QfsumError(f"{path}: no examples (the file is empty)")
    return records


def jsonl_document(record: dict[str, Any], where: str) -> Document:
    """The document of one JSONL record: `document` (a string) or `segments` (strings or objects)."""
    id = require_unicode(str(record.get("id", where)), f"{where}: id")
    if isinstance(record.get("segments"), list):
        units = []
        for seg in record["segments"]:
            if isinstance(seg, str):
                units.append((None, seg))
            elif isinstance(seg, dict) and isinstance(seg.get("text"), str):
                units.append((_field(seg, "speaker") or None, seg["text"]))
            else:
                raise QfsumError(f"{where}: each segment must be a string or an object with 'text'")
        if not any(text.strip() for _, text in units):
            raise QfsumError(f"{where}: the document is empty")
        return Document.from_units(units, id)
    if isinstance(record.get("document"), str):
        if not record["document"].strip():
            raise QfsumError(f"{where}: the document is empty")
        return Document(record["document"], paragraph_units(record["document"]), id)
    raise QfsumError(f"{where}: needs 'document' (a string) or 'segments' (a list)")


def jsonl_example(record: dict[str, Any], where: str) -> Example:
    """One JSONL record as an Example (see docs for the format)."""
    query = record.get("query")
    if not isinstance(query, str) or not query.strip():
        raise QfsumError(f"{where}: needs a non-empty 'query'")
    require_unicode(query, f"{where}: query")
    references = record.get("summaries", record.get("summary", []))
    if isinstance(references, str):
        references = [references]
    if not isinstance(references, list) or not all(isinstance(r, str) for r in references):
        raise QfsumError(f"{where}: 'summary' must be a string, 'summaries' a list of strings")
    for reference in references:
        require_unicode(reference, f"{where}: summary")
    try:
        spans = [(int(a), int(b)) for a, b in record.get("spans") or []]
    except (TypeError, ValueError):
        raise QfsumError(f"{where}: 'spans' must be a list of [first, last] unit indices") from None
    document = jsonl_document(record, where)
    return Example(str(record.get("id", where)), document, query.strip(), references, spans)


def document_from_bytes(data: bytes, source: str, id: str, name: str = "", content_type: str | None = None,
                        charset: str | None = None) -> Document:
    """A document from raw bytes: PDF, HTML or DOCX when the content (or else `name`'s extension, or
    else `content_type`) says so, UTF-8 text otherwise (in `charset` if a server named one)."""
    kind = detect_format(data, name, content_type)
    if kind:
        return read_format(kind, data, source, id)
    if charset and charset.lower().replace("_", "-") not in ("utf-8", "utf8", "us-ascii", "ascii"):
        return document_from_text(_decode_charset(data, charset, source), id)
    return document_from_text(decode_text(data, source), id)


def _decode_charset(data: bytes, charset: str, source: str) -> str:
    try:
        return data.decode(charset)
    except LookupError:
        raise QfsumError(f"{source}: unknown character set '{charset}'") from None
    except UnicodeDecodeError as err:
        raise QfsumError(f"{source}: not valid {charset} (byte {err.start})") from None


def read_url(url: str) -> Document:
    """Fetch an http(s) URL (bounded in size and time, see `qfsum.formats.fetch`) as a document."""
    from .formats.fetch import fetch  # urllib and ssl: only when a URL is read

    page = fetch(url)
    path = urlsplit(page.url).path
    id = PurePosixPath(path).stem or urlsplit(page.url).hostname or "page"
    return document_from_bytes(page.data, url, id, name=path, content_type=page.content_type, charset=page.charset)


def read_document(path: str | Path) -> tuple[Document, list[str]]:
    """Read one document for summarizing, with any queries the file itself carries.

    `path` is a file or an http(s) URL. PDF, HTML and DOCX are recognised by content or extension;
    other files are UTF-8 text (Markdown included). Text, PDF, HTML and DOCX carry no queries; a
    QMSum meeting (.json) carries all of its queries; a JSONL file gives its first record's document
    and query.
    """
    if isinstance(path, str) and is_url(path):
        return read_url(path), []
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        meeting = _load_json(path)
        examples = qmsum_examples(meeting, path.stem)
        document = examples[0].document if examples else qmsum_document(meeting, path.stem)
        return document, [e.query for e in examples]
    if suffix == ".jsonl":
        lineno, record = _jsonl_records(path)[0]
        query = record.get("query")
        where = f"{path}:{lineno}"
        queries = [require_unicode(query, f"{where}: query")] if isinstance(query, str) and query.strip() else []
        return jsonl_document(record, where), queries
    return document_from_bytes(read_bytes(path), str(path), path.stem, name=path.name), []


def read_examples(data: str | Path, split: str | None = None) -> list[Example]:
    """Read evaluation examples in a fixed order.

    `data` is a QMSum root (with train/val/test folders, `split` picks one), a folder of QMSum
    meeting files, a single meeting file, or a JSONL file.
    """
    path = Path(data)
    if path.is_dir():
        splits = sorted(p.name for p in path.iterdir() if p.is_dir())
        folder = path / split if split and split in splits else path
        if splits and folder == path:
            wanted = f"has no '{split}' folder" if split else "holds splits: give --split"
            raise QfsumError(f"{path}: {wanted} (found {', '.join(splits)})")
        files = sorted(folder.glob("*.json"))
        if not files:
            raise QfsumError(f"{folder}: no QMSum .json files found")
        return [e for f in files for e in qmsum_examples(_load_json(f), f.stem)]
    if not path.exists():
        raise QfsumError(f"{path}: no such file or directory")
    if path.suffix.lower() == ".jsonl":
        return [jsonl_example(r, f"{path}:{n}") for n, r in _jsonl_records(path)]
    if path.suffix.lower() == ".json":
        return qmsum_examples(_load_json(path), path.stem)
    raise QfsumError(f"{path}: expected a QMSum folder, a .json meeting or a .jsonl file")
