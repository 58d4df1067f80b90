"""User errors through the CLI: exit code 2, one stderr line 'qfsum: error: ...', no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import JSONL_RECORDS, assert_one_error_line, cli, qfsum_script, run_subprocess
from test_safe_loading import pickle_only_model


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
        return ["summarize", str(good), "-q", "budget", "-p", str(saved)], "pipeline config: malformed JSON"
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


# -- issue 15 part 5: each case through the real console script --------------------------------------

NESTED = "[" * 100_000 + "]" * 100_000


def _write_issue_case(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """The CLI arguments of one case of the issue, and a fragment its one error line must contain."""
    summarize = ["summarize", "-p", "extractive-bm25"]
    if case == "surrogate in a JSONL document":
        (tmp_path / "s.jsonl").write_text('{"document": "The budget \\ud800 was cut.", "query": "budget"}\n')
        return summarize + [str(tmp_path / "s.jsonl")], "s.jsonl:1: holds a lone UTF-16 surrogate (U+D800)"
    if case == "surrogate in a JSONL query":
        (tmp_path / "s.jsonl").write_text('{"document": "The budget was cut.", "query": "budget \\udc80"}\n')
        return summarize + [str(tmp_path / "s.jsonl")], "s.jsonl:1: query: holds a lone UTF-16 surrogate (U+DC80)"
    if case == "argv bytes that are not UTF-8":
        (tmp_path / "good.txt").write_text("The budget was cut.")
        query = os.fsdecode(b"budget \xff\xfe")  # what the child's argv decodes to, sent back as those bytes
        return summarize + [str(tmp_path / "good.txt"), "-q", query], "--query: holds a lone UTF-16 surrogate (U+DCFF)"
    if case == "nested JSON":
        (tmp_path / "deep.json").write_text(NESTED)
        return summarize + [str(tmp_path / "deep.json"), "-q", "budget"], "deep.json: JSON nested too deeply"
    if case == "nested JSONL":
        (tmp_path / "deep.jsonl").write_text(NESTED + "\n")
        return summarize + [str(tmp_path / "deep.jsonl"), "-q", "budget"], "deep.jsonl:1: JSON nested too deeply"
    if case == "general_query_list: 5":
        meeting = {"meeting_transcripts": [{"speaker": "A", "content": "The budget was cut."}], "general_query_list": 5}
        (tmp_path / "meeting.json").write_text(json.dumps(meeting))
        return summarize + [str(tmp_path / "meeting.json"), "-q", "budget"], "'general_query_list' must be a list"
    if case == "NUL after the first 8 KiB":
        (tmp_path / "late.txt").write_bytes(b"word " * 3000 + b"\x00 end")
        return (summarize + [str(tmp_path / "late.txt"), "-q", "budget"],
                "late.txt: looks like a binary file (NUL byte at offset 15000)")
    if case == "a writer with only a pickled pytorch_model.bin":
        marker = tmp_path / "pickle-ran"
        writer = pickle_only_model(tmp_path / "writer", marker)
        config = {"scorer": {"kind": "bm25"}, "writer": {"kind": "generative", "model": str(writer)}}
        (tmp_path / "pipe").mkdir()
        (tmp_path / "pipe" / "pipeline.json").write_text(json.dumps(config))
        (tmp_path / "good.txt").write_text("The budget was cut.")
        return (["summarize", str(tmp_path / "good.txt"), "-q", "budget", "-p", str(tmp_path / "pipe")],
                f"{writer}: no safetensors weights (pickle .bin files are not loaded)")
    raise AssertionError(case)


ISSUE_CASES = [
    "surrogate in a JSONL document",
    "surrogate in a JSONL query",
    "argv bytes that are not UTF-8",
    "nested JSON",
    "nested JSONL",
    "general_query_list: 5",
    "NUL after the first 8 KiB",
    "a writer with only a pickled pytorch_model.bin",
]


def _real_cli(*args: str, **popen_options) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([qfsum_script(), *args], capture_output=True, env=env, timeout=300, **popen_options)


@pytest.mark.parametrize("case", ISSUE_CASES)
def test_issue_cases_are_one_line_in_a_real_process(tmp_path, case):
    args, fragment = _write_issue_case(tmp_path, case)
    result = _real_cli(*args, cwd=tmp_path)
    line = assert_one_error_line(result.returncode, result.stderr.decode(errors="backslashreplace"))
    assert fragment in line
    assert result.stdout == b""
    assert not (tmp_path / "pickle-ran").exists()


def test_closed_stdin_is_a_user_error():
    """`qfsum summarize - -q x <&-`: Python starts with sys.stdin None."""
    result = _real_cli("summarize", "-", "-q", "budget", "-p", "extractive-bm25", stdin=subprocess.DEVNULL,
                       preexec_fn=lambda: os.close(0))
    assert "stdin: closed" in assert_one_error_line(result.returncode, result.stderr.decode())


def test_unreadable_stdin_is_a_user_error(tmp_path):
    """stdin opened for writing only (`0>file`): reading it fails with EBADF."""
    with open(tmp_path / "out", "wb") as write_only:
        result = _real_cli("summarize", "-", "-q", "budget", "-p", "extractive-bm25", stdin=write_only)
    assert "stdin: cannot read" in assert_one_error_line(result.returncode, result.stderr.decode())


def test_broken_pipe_exits_quietly(tmp_path):
    """`qfsum summarize ... | head -c1`: the reader leaves early; no traceback, no 'Exception ignored'."""
    path = tmp_path / "long.txt"
    path.write_text("\n\n".join(f"The budget of item {i} was cut by {i} percent." for i in range(3000)))
    queries = [arg for i in range(60) for arg in ("-q", f"budget {i}")]  # ~130 KB of JSON: more than a pipe holds
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    child = subprocess.Popen([qfsum_script(), "summarize", str(path), *queries, "-p", "extractive-bm25", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert child.stdout.read(1) == b"["
    child.stdout.close()  # the rest of the write now fails with EPIPE
    err = child.stderr.read().decode()
    assert child.wait(timeout=300) == 0, err
    assert err == ""


def test_interrupt_exits_quietly_with_130():
    """Ctrl-C while qfsum waits on stdin: one line, exit 130, no traceback."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    child = subprocess.Popen([qfsum_script(), "summarize", "-", "-q", "budget", "-p", "extractive-bm25"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        _wait_until_reading_a_pipe(child.pid)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 130, err
    assert err.decode().splitlines() == ["qfsum: interrupted"]


def _wait_until_reading_a_pipe(pid: int, timeout: float = 120.0) -> None:
    """Block until the process sleeps in a pipe read (Linux: /proc/PID/wchan), i.e. its imports are done."""
    wchan = Path(f"/proc/{pid}/wchan")
    if not wchan.exists():
        pytest.skip("needs /proc/PID/wchan to tell when the child reads stdin")
    deadline = time.monotonic() + timeout
    while "pipe" not in wchan.read_text():
        assert time.monotonic() < deadline, "the child never read stdin"
        time.sleep(0.05)


def test_interrupt_in_process_is_one_line(capsys, monkeypatch):
    import qfsum.cli.summarize

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(qfsum.cli.summarize, "cmd_pipelines", interrupted)
    code, _, err = cli(capsys, "pipelines")
    assert code == 130 and err.splitlines() == ["qfsum: interrupted"]


# -- numbers argparse lets through: nan, inf, out of range --------------------------------------------

TRAIN = ["--data", "nowhere", "--out", "nowhere-out"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["evaluate-extractor", "--data", "x", "--scorer", "bm25", "--budget", "0"], "--budget must be >= 1, got 0"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--lr", "inf"], "--lr must be a finite number, got inf"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--epochs", "nan"], "--epochs must be a finite number"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--positive-threshold", "nan"], "--positive-threshold must be a finite"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--negatives-per-positive", "nan"], "--negatives-per-positive must be a number"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--negatives-per-positive", "inf"], "--negatives-per-positive must be a number"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--max-length", "-1"], "--max-length must be >= 1, got -1"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--workers", "0"], "--workers must be >= 1, got 0"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--val-limit", "-1"], "--val-limit must be >= 0, got -1"),
    (["train", "extractor", "--kind", "relreg", *TRAIN, "--seed", str(10**30)], "--seed is too large"),
    (["train", "sft", *TRAIN, "--lr", "nan"], "--lr must be a finite number"),
    (["train", "sft", *TRAIN, "--warmup", "-1"], "warmup must be in [0, 1), got -1.0"),
    (["train", "sft", *TRAIN, "--lora-alpha", "0"], "lora alpha must be >= 1, got 0"),
    (["train", "sft", *TRAIN, "--passage-tokens", "-5"], "--passage-tokens must be >= 1, got -5"),
    (["bench", "task", "--data", "x", "--source", "document", "--passage-tokens", "0"], "--passage-tokens must be >= 1"),
    (["train", "sft", *TRAIN, "--val-max-new-tokens", "0"], "val max new tokens must be >= 1, got 0"),
    (["train", "distill", *TRAIN, "--teacher", "smollm2", "--temperature", "nan"], "--temperature must be a finite"),
    (["train", "distill", *TRAIN, "--teacher", "smollm2", "--teacher-max-new-tokens", "0"], "--teacher-max-new-tokens must be >= 1"),
    (["train", "dpo", "--model", "smollm2", *TRAIN, "--sample-temperature", "0"], "--sample-temperature must be > 0"),
    (["train", "dpo", "--model", "smollm2", *TRAIN, "--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
    (["train", "seq2seq", "--arch", "plain", "--base", "x", *TRAIN, "--weight-decay", "inf"], "--weight-decay must be a finite"),
    (["bench", "task", "--data", "x", "--max-prompt", "0"], "--max-prompt must be >= 1, got 0"),
    (["bench", "segenc", "--layers", "0"], "--layers must be >= 1, got 0"),
    (["bench", "locost-scaling", "--memory-limit", "-1"], "--memory-limit must be > 0"),
    (["serve", "--deadline", "inf"], "--deadline"),
])
def test_bad_numbers_are_one_line(capsys, args, fragment):
    code, out, err = cli(capsys, *args)
    assert fragment in assert_one_error_line(code, err)
    assert out == ""


def test_qmsum_span_of_infinity_is_one_line(capsys, tmp_path):
    """Python's json reads `Infinity` (and 1e999) as a float that int() cannot take."""
    meeting = {"meeting_transcripts": [{"speaker": "A", "content": "The budget was cut."}], "general_query_list": [],
               "specific_query_list": [{"query": "q", "answer": "a", "relevant_text_span": [[float("inf"), 0]]}]}
    (tmp_path / "meeting.json").write_text(json.dumps(meeting))
    code, _, err = cli(capsys, "evaluate", "--data", tmp_path / "meeting.json", "-p", "extractive-bm25",
                       "--out", tmp_path / "out", "--no-progress")
    assert "specific_query_list[0] needs 'query', 'answer' and [first, last] spans" in assert_one_error_line(code, err)


def test_deeply_nested_pipeline_json_is_one_line(capsys, tmp_path):
    (tmp_path / "pipe").mkdir()
    (tmp_path / "pipe" / "pipeline.json").write_text(NESTED)
    (tmp_path / "good.txt").write_text("The budget was cut.")
    code, _, err = cli(capsys, "summarize", tmp_path / "good.txt", "-q", "budget", "-p", tmp_path / "pipe")
    assert "pipeline config: JSON nested too deeply" in assert_one_error_line(code, err)
