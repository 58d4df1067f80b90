"""User errors through the CLI: exit code 2, one stderr line 'qfsum: error: ...', no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import JSONL_RECORDS, assert_one_error_line, cli, run_subprocess


def _make(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """The CLI arguments of one error case, and a fragment the message must contain."""
    good = tmp_path / "good.txt"
    good.write_text("The budget was cut.\n\nThe meeting ended.")
    summarize = ["summarize", "-p", "extractive-bm25"]
    if case == "empty document":
        (tmp_path / "empty.txt").write_text("")
        return summarize + [str(tmp_path / "empty.txt"), "-q", "budget"], "the document is empty"
    if case == "blank document":
        (tmp_path / "blank.md").write_text(" \n\n\t\n")
        return summarize + [str(tmp_path / "blank.md"), "-q", "budget"], "the document is empty"
    if case == "empty query":
        return summarize + [str(good), "-q", ""], "the query is empty"
    if case == "blank query":
        return summarize + [str(good), "-q", "budget", "-q", "   "], "the query is empty"
    if case == "no query":
        return summarize + [str(good)], "give at least one --query"
    if case == "missing file":
        return summarize + [str(tmp_path / "missing.txt"), "-q", "budget"], "missing.txt: no such file"
    if case == "missing json":
        return summarize + [str(tmp_path / "missing.json"), "-q", "budget"], "missing.json: no such file"
    if case == "directory":
        (tmp_path / "folder").mkdir()
        return summarize + [str(tmp_path / "folder"), "-q", "budget"], "is a directory"
    if case == "binary file":
        (tmp_path / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
        return summarize + [str(tmp_path / "image.txt"), "-q", "budget"], "looks like a binary file"
    if case == "non-utf8":
        (tmp_path / "latin1.txt").write_bytes("Caf\u00e9 au lait.".encode("latin-1"))
        return summarize + [str(tmp_path / "latin1.txt"), "-q", "budget"], "not valid UTF-8 (byte 3)"
    if case == "malformed json":
        (tmp_path / "meeting.json").write_text('{"meeting_transcripts": [{"speaker": "A", "content": "x"},]}')
        return summarize + [str(tmp_path / "meeting.json"), "-q", "budget"], "meeting.json: malformed JSON at line 1"
    if case == "json not a meeting":
        (tmp_path / "other.json").write_text(json.dumps({"title": "not a meeting"}))
        return summarize + [str(tmp_path / "other.json"), "-q", "budget"], "not a QMSum meeting"
    if case == "malformed jsonl line":
        lines = [json.dumps(JSONL_RECORDS[0]), json.dumps(JSONL_RECORDS[1]), '{"id": "x", "query": "q",']
        (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
        return summarize + [str(tmp_path / "data.jsonl")], "data.jsonl:3: malformed JSON"
    if case == "unknown pipeline":
        return ["summarize", str(good), "-q", "budget", "-p", "no-such-pipeline"], "unknown pipeline 'no-such-pipeline'"
    if case == "unknown writer model":
        saved = tmp_path / "saved"
        saved.mkdir()
        config = {"scorer": {"kind": "bm25"}, "writer": {"kind": "generative", "model": "no-such-model"}}
        (saved / "pipeline.json").write_text(json.dumps(config))
        return ["summarize", str(good), "-q", "budget", "-p", str(saved)], "unknown model 'no-such-model'"
    if case == "unknown scorer model":
        saved = tmp_path / "saved"
        saved.mkdir()
        config = {"scorer": {"kind": "dense", "model": "no-such-encoder"}, "writer": {"kind": "extractive"}}
        (saved / "pipeline.json").write_text(json.dumps(config))
        return ["summarize", str(good), "-q", "budget", "-p", str(saved)], "unknown model 'no-such-encoder'"
    if case == "malformed pipeline.json":
        saved = tmp_path / "saved"
        saved.mkdir()
        (saved / "pipeline.json").write_text("{oops")
        return ["summarize", str(good), "-q", "budget", "-p", str(saved)], "malformed pipeline config"
    if case == "evaluate missing data":
        return ["evaluate", "--data", str(tmp_path / "nope"), "-p", "extractive-bm25"], "no such file or directory"
    if case == "evaluate bad limit":
        return ["evaluate", "--data", str(tmp_path / "nope"), "-p", "extractive-bm25", "--limit", "0"], "--limit must be >= 1"
    if case == "extractor bad segmenter":
        path = tmp_path / "data.jsonl"
        path.write_text(json.dumps(JSONL_RECORDS[0]) + "\n")
        return [
            "evaluate-extractor", "--data", str(path), "--scorer", "bm25", "--segment", "paragraph",
            "--tokenizer", "words", "--out", str(tmp_path / "o"),
        ], "unknown segmenter 'paragraph'"
    raise AssertionError(case)


CASES = [
    "empty document",
    "blank document",
    "empty query",
    "blank query",
    "no query",
    "missing file",
    "missing json",
    "directory",
    "binary file",
    "non-utf8",
    "malformed json",
    "json not a meeting",
    "malformed jsonl line",
    "unknown pipeline",
    "unknown writer model",
    "unknown scorer model",
    "malformed pipeline.json",
    "evaluate missing data",
    "evaluate bad limit",
    "extractor bad segmenter",
]


@pytest.mark.parametrize("case", CASES)
def test_user_errors_in_process(capsys, tmp_path, case):
    args, fragment = _make(tmp_path, case)
    code, out, err = cli(capsys, *args)
    line = assert_one_error_line(code, err)
    assert fragment in line
    assert out == ""


@pytest.mark.parametrize("case", ["binary file", "malformed jsonl line", "unknown pipeline", "unknown writer model"])
def test_user_errors_in_a_real_process(tmp_path, case):
    args, fragment = _make(tmp_path, case)
    result = run_subprocess(*args, cwd=tmp_path)
    err = result.stderr.decode()
    line = assert_one_error_line(result.returncode, err)
    assert fragment in line
    assert result.stdout == b""


def test_empty_stdin_is_a_user_error():
    result = run_subprocess("summarize", "-", "-q", "budget", "-p", "extractive-bm25", stdin=b"   \n", module=True)
    line = assert_one_error_line(result.returncode, result.stderr.decode())
    assert "stdin: the document is empty" in line


def test_binary_stdin_is_a_user_error(capsys, monkeypatch):
    import io
    import sys

    class FakeStdin:
        buffer = io.BytesIO(b"\x00\x01\x02binary")

    monkeypatch.setattr(sys, "stdin", FakeStdin())
    code, _, err = cli(capsys, "summarize", "-", "-q", "budget", "-p", "extractive-bm25")
    assert "stdin: looks like a binary file" in assert_one_error_line(code, err)


def test_usage_errors_exit_2(capsys):
    code, _, err = cli(capsys, "summarize")
    assert code == 2 and "usage:" in err and "Traceback" not in err
    code, _, err = cli(capsys, "evaluate", "--data", "x")
    assert code == 2 and "--pipeline" in err


def test_qmsum_meeting_with_string_turns_is_a_user_error(capsys, tmp_path):
    path = tmp_path / "meeting.json"
    path.write_text(json.dumps({"meeting_transcripts": ["hello there", "second turn"]}))
    code, _, err = cli(capsys, "summarize", path, "-q", "hello", "-p", "extractive-bm25")
    assert_one_error_line(code, err)


def test_jsonl_numeric_speaker_through_the_cli(capsys, tmp_path):
    path = tmp_path / "speakers.jsonl"
    record = {"segments": [{"speaker": 5, "text": "Hello there."}, {"speaker": 6, "text": "The budget."}], "query": "budget"}
    path.write_text(json.dumps(record) + "\n")
    code, out, err = cli(capsys, "summarize", path, "-p", "extractive-bm25", "--json")
    assert code == 0, err
    assert "6: The budget." in json.loads(out)[0]["summary"]


def test_huge_file_is_refused(tmp_path, capsys, monkeypatch):
    import qfsum.readers

    monkeypatch.setattr(qfsum.readers, "MAX_FILE_BYTES", 1024)
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000)
    code, _, err = cli(capsys, "summarize", str(big), "-q", "budget", "-p", "extractive-bm25")
    assert "over the 0 MB limit" in assert_one_error_line(code, err)


def test_huge_stdin_is_refused(tmp_path):
    """The stdin limit is the file limit: 64 MB and one byte is refused without reading on."""
    result = run_subprocess(
        "summarize", "-", "-q", "budget", "-p", "extractive-bm25", stdin=b"word " * (64 * 2**20 // 5 + 1)
    )
    assert "stdin: over the 64 MB limit" in assert_one_error_line(result.returncode, result.stderr.decode())
