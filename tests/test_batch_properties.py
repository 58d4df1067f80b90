"""Property: any input file either completes, with exactly one output line per non-blank input line
(a summary or an error), or stops with exit code 2 and one stderr line; never a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qfsum.cli import main  # noqa: E402

SURROGATES = st.sampled_from(["\udc00", "a\ud800b", "\udfff "])
TEXT = st.one_of(st.text(max_size=30), SURROGATES, st.sampled_from(["The budget was cut.", "budget?", " "]))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                    max_leaves=8)
ID = st.one_of(st.none(), st.integers(0, 5), st.sampled_from(["a", "b", "line-1"]), TEXT, JSON)
SEGMENTS = st.lists(st.fixed_dictionaries({"speaker": TEXT, "text": TEXT}), max_size=3)
RECORD = st.fixed_dictionaries(
    {"query": st.one_of(TEXT, JSON)},
    optional={"id": ID, "document": st.one_of(TEXT, JSON), "segments": st.one_of(SEGMENTS, JSON)},
)
VALID = st.fixed_dictionaries(  # most inputs are mostly fine: without these, nearly every file has no valid line
    {"document": st.sampled_from(["The budget was cut.\n\nThe meeting ended.", "Rubber is cheap."]),
     "query": st.sampled_from(["What about the budget?", "Why rubber?"])},
    optional={"id": st.uuids().map(str)},
)
LINE = st.one_of(  # bytes: a line may not even be UTF-8
    VALID.map(lambda r: json.dumps(r).encode()),
    RECORD.map(lambda r: json.dumps(r).encode()),  # ASCII JSON: a surrogate is written as its \u escape
    JSON.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")),
    st.sampled_from([b"[" * 50_000, b"{oops", b"", b"   ", b"\xef\xbb\xbf"]),
)


def run_cli(*args: str) -> tuple[int, str]:
    """(exit code, stderr) of `qfsum ARGS` in this process."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
    return code, stderr.getvalue()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, min_size=1, max_size=6))
def test_any_input_completes_with_one_line_per_record_or_fails_in_one_line(lines):
    with tempfile.TemporaryDirectory() as folder:
        data, out = Path(folder) / "in.jsonl", Path(folder) / "out.jsonl"
        data.write_bytes(b"\n".join(lines) + b"\n")
        code, err = run_cli("batch", "-i", str(data), "-o", str(out), "-p", "extractive-lead",
                            "--executor", "local", "--block-size", "2", "--no-progress")
        assert "Traceback" not in err
        if code == 2:
            assert err.splitlines()[-1].startswith("qfsum: error: ") and len(err.splitlines()) == 1
            return
        records = [line for line in lines if line.decode("utf-8-sig", "replace").strip()]
        answers = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(answers) == len(records)
        assert len({a["id"] for a in answers}) == len(answers)  # every id exactly once
        assert all(("summary" in a) != ("error" in a) for a in answers)
        assert code == (1 if any("error" in a for a in answers) else 0)
