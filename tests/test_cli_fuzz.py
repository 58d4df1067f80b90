"""Any input, one outcome: the readers and `qfsum.cli.main` either succeed or fail with a QfsumError
(exit 2, one stderr line) - never another exception. Inputs: arbitrary bytes and text (lone
surrogates, NUL), JSON of any shape (deep nesting, wrong types in QMSum and JSONL fields).

hypothesis is in the `test` extra; without it this module is skipped. conftest.py derandomizes it.
"""

from __future__ import annotations

import math

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qfsum import QfsumError  # noqa: E402
from qfsum.cli import main  # noqa: E402
from qfsum.readers import read_document, read_examples  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = [".txt", ".md", ".json", ".jsonl"]
DEEP = "[" * 50_000 + "]" * 50_000

# text with what breaks naive code: lone surrogates (JSON's \udXXX escapes make them), NUL, line breaks
_ODD = st.sampled_from(["\ud800", "\udfff", "\udc80", "\x00", "\u2028", "\r\n", "\ufeff", "{gap}"])
TEXTS = st.one_of(st.text(max_size=40), st.tuples(st.text(max_size=8), _ODD, st.text(max_size=8)).map("".join))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**20), st.floats(allow_nan=False), TEXTS)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXTS, inner, max_size=4),
                           max_leaves=12)


def _field(value: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a field of the right shape; now and then any JSON value instead (the wrong type)."""
    return st.one_of(value, value, value, JSON_VALUES)


def _record(fields: dict[str, st.SearchStrategy], required: tuple[str, ...]) -> st.SearchStrategy:
    """A JSON object with the `required` keys (and perhaps others), or with any subset of the keys."""
    complete = st.fixed_dictionaries({k: fields[k] for k in required},
                                     optional={k: v for k, v in fields.items() if k not in required})
    return complete | st.fixed_dictionaries({}, optional=fields)


_TURNS = st.lists(_record({"speaker": _field(TEXTS), "content": _field(TEXTS)}, ("speaker", "content")), max_size=4)
_SPANS = st.lists(st.lists(_field(st.integers(-2, 5)) | st.sampled_from(["1", "x", 1e300, math.inf]), max_size=3), max_size=3)
_QUERIES = st.lists(_record({"query": _field(TEXTS), "answer": _field(TEXTS), "relevant_text_span": _field(_SPANS)},
                            ("query", "answer")), max_size=3)
QMSUM_MEETINGS = _record({
    "meeting_transcripts": _field(_TURNS),
    "general_query_list": _field(_QUERIES),
    "specific_query_list": _field(_QUERIES),
    "topic_list": _field(st.lists(JSON_VALUES, max_size=2)),
}, ("meeting_transcripts", "general_query_list", "specific_query_list"))
_SEGMENTS = st.lists(_field(TEXTS) | _record({"text": _field(TEXTS), "speaker": _field(TEXTS)}, ("text",)),
                     max_size=4)
_JSONL_FIELDS = {
    "id": _field(TEXTS), "document": _field(TEXTS), "segments": _field(_SEGMENTS), "query": _field(TEXTS),
    "summary": _field(TEXTS), "summaries": _field(st.lists(TEXTS, max_size=2)), "spans": _field(_SPANS),
}
JSONL_RECORDS = _record(_JSONL_FIELDS, ("document", "query")) | _record(_JSONL_FIELDS, ("segments", "query"))


@st.composite
def files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, content): raw bytes, text in any encoding, or JSON/JSONL of any shape."""
    suffix = draw(st.sampled_from(SUFFIXES))
    kind = draw(st.sampled_from(["bytes", "text", "json"]))
    if kind == "bytes":
        return suffix, draw(st.binary(max_size=200))
    if kind == "text":
        return suffix, draw(TEXTS).encode("utf-8", "surrogatepass")  # a surrogate: bytes that are not UTF-8
    if suffix == ".jsonl":
        records = draw(st.lists(st.one_of(JSONL_RECORDS, JSON_VALUES), min_size=1, max_size=3))
        return suffix, "\n".join(json.dumps(r) for r in records).encode()
    return suffix, json.dumps(draw(st.one_of(QMSUM_MEETINGS, JSON_VALUES))).encode()


def _in_file(suffix: str, content: bytes, directory: Path) -> Path:
    path = directory / f"input{suffix}"
    path.write_bytes(content)
    return path


@SETTINGS
@given(files())
@example((".json", DEEP.encode()))
@example((".jsonl", (DEEP + "\n").encode()))
@example((".json", json.dumps({"meeting_transcripts": [{"speaker": "A", "content": "x"}], "general_query_list": 5}).encode()))
@example((".txt", b"word " * 3000 + b"\x00"))
def test_readers_succeed_or_raise_qfsum_error(file):
    with tempfile.TemporaryDirectory() as directory:
        path = _in_file(*file, Path(directory))
        with contextlib.suppress(QfsumError):
            read_document(path)
        if path.suffix in (".json", ".jsonl"):
            with contextlib.suppress(QfsumError):
                read_examples(path)


def _run_cli(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """`main(args)` in this process with stdin, stdout and stderr swapped for buffers."""
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin))
    saved_stdin, sys.stdin = sys.stdin, fake_stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exit:  # argparse
                code = exit.code
    finally:
        sys.stdin = saved_stdin
    return code, out.getvalue(), err.getvalue()


def _assert_success_or_one_line(code: int, out: str, err: str) -> None:
    if code == 0:
        json.loads(out)
        return
    assert code == 2, f"exit code {code}: {err}"
    assert err.count("\n") == 1 and err.startswith("qfsum: error: "), err


CLEAN_QUERIES = st.text(st.characters(codec="utf-8"), min_size=1, max_size=20).filter(str.strip)
QUERIES = st.one_of(CLEAN_QUERIES, CLEAN_QUERIES, TEXTS.filter(str.strip), st.none())  # None: the file's own queries


@SETTINGS
@given(files(), QUERIES)
def test_summarize_any_file_exits_0_or_2(file, query):
    with tempfile.TemporaryDirectory() as directory:
        path = _in_file(*file, Path(directory))
        args = ["summarize", str(path), "-p", "extractive-bm25", "--json"]
        _assert_success_or_one_line(*_run_cli(args + ([f"--query={query}"] if query is not None else [])))


@SETTINGS
@given(st.binary(max_size=300) | TEXTS.map(lambda t: t.encode("utf-8", "surrogatepass")), CLEAN_QUERIES)
def test_summarize_any_stdin_exits_0_or_2(data, query):
    _assert_success_or_one_line(*_run_cli(["summarize", "-", f"--query={query}", "-p", "extractive-bm25", "--json"], data))


DATA_SETS = st.one_of(
    st.lists(JSONL_RECORDS, min_size=1, max_size=3).map(lambda rs: (".jsonl", "\n".join(json.dumps(r) for r in rs))),
    QMSUM_MEETINGS.map(lambda meeting: (".json", json.dumps(meeting))),
)


@SETTINGS
@given(DATA_SETS)
def test_evaluate_any_data_set_exits_0_or_2(data_set):
    suffix, text = data_set
    with tempfile.TemporaryDirectory() as directory:
        path = _in_file(suffix, text.encode(), Path(directory))
        args = ["evaluate", "--data", str(path), "-p", "extractive-bm25", "--out", str(Path(directory) / "out"),
                "--no-progress"]
        code, out, err = _run_cli(args)
        if code == 0:
            assert "wrote" in out and err == ""
        else:
            _assert_success_or_one_line(code, out, err)
