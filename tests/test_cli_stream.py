"""`qfsum summarize` answers as it goes: each answer printed before the next group is answered,
--jsonl one flushed line per answer, progress on a terminal only, evidence ranks; noise control."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import warnings

import pytest
from conftest import cli

from qfsum import Pipeline, quiet
from qfsum.cli.summarize import StatusLine, query_groups

QUERIES = [
    "What happened to the bridge budget?",
    "When will the reading room close?",
    "Who presented the library report?",
    "When did the meeting end?",
    "When did the council meet?",
    "Why was the budget cut?",
]


def _run_recorded(capsys, monkeypatch, *args):
    """Run summarize; return (stdout seen before each answering call, the rest, stderr)."""
    printed_before: list[str] = []
    original = Pipeline.load

    def load(name, **options):
        pipeline = original(name, **options)
        pipeline.config.writer.batch_size = 2  # groups: [0], [1, 2], [3, 4], [5]
        answer = pipeline.summarize_many

        def summarize_many(document, queries):
            printed_before.append(capsys.readouterr().out)
            return answer(document, queries)

        pipeline.summarize_many = summarize_many
        return pipeline

    monkeypatch.setattr(Pipeline, "load", staticmethod(load))
    from qfsum.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    rest, err = capsys.readouterr()
    assert code == 0, err
    return printed_before, rest, err


def _query_args() -> list[str]:
    return [arg for q in QUERIES for arg in ("-q", q)]


def test_query_groups_cover_every_query_once_in_order():
    assert query_groups(0, 4) == []
    assert query_groups(1, 4) == [range(0, 1)]
    assert query_groups(7, 4) == [range(0, 1), range(1, 5), range(5, 7)]
    for n in range(1, 12):
        for size in (0, 1, 2, 3, 16):
            groups = query_groups(n, size)
            assert [i for g in groups for i in g] == list(range(n))
            assert len(groups[0]) == 1 and all(1 <= len(g) <= max(size, 1) for g in groups)


def test_text_answers_are_printed_as_each_group_is_answered(capsys, monkeypatch, text_path):
    before, rest, err = _run_recorded(capsys, monkeypatch, "summarize", text_path, *_query_args(), "-p", "extractive-bm25")
    assert len(before) == 4  # one call per group: [0], [1, 2], [3, 4], [5]
    assert before[0] == ""  # nothing before the first answer
    for printed, answered in zip(before[1:], (QUERIES[0:1], QUERIES[1:3], QUERIES[3:5])):
        assert [line[3:] for line in printed.splitlines() if line.startswith("Q: ")] == answered
    whole = "".join(before) + rest
    assert [line[3:] for line in whole.splitlines() if line.startswith("Q: ")] == QUERIES
    assert err == ""  # stderr is not a terminal here: no progress line


def test_jsonl_streams_one_object_per_answer(capsys, monkeypatch, text_path):
    before, rest, _ = _run_recorded(capsys, monkeypatch, "summarize", text_path, *_query_args(), "-p", "extractive-bm25",
                                    "--jsonl")
    assert [len(chunk.splitlines()) for chunk in before] == [0, 1, 2, 2]  # lines out before each group
    lines = "".join(before + [rest]).splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["query"] for r in records] == QUERIES
    source = text_path.read_text()
    for record in records:
        assert {"query", "summary", "sentences", "evidence", "timings"} <= set(record)
        assert all(source[e["start"] : e["end"]] == e["text"] for e in record["evidence"])


def test_json_stays_one_array_at_the_end(capsys, monkeypatch, text_path):
    before, rest, _ = _run_recorded(capsys, monkeypatch, "summarize", text_path, *_query_args(), "-p", "extractive-bm25",
                                    "--json")
    assert "".join(before) == ""
    assert [r["query"] for r in json.loads(rest)] == QUERIES


def test_json_and_jsonl_are_exclusive(capsys, text_path):
    code, out, err = cli(capsys, "summarize", text_path, "-q", "x", "--json", "--jsonl")
    assert code == 2 and "not allowed with" in err and out == ""


def test_jsonl_subprocess_lines_arrive_before_exit(text_path):
    """Through a real pipe: the first line can be read while the process may still run (flushed)."""
    from conftest import qfsum_script

    process = subprocess.Popen([qfsum_script(), "summarize", str(text_path), *_query_args(), "-p", "extractive-bm25",
                                "--jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = json.loads(process.stdout.readline())
        assert first["query"] == QUERIES[0]
        rest = [json.loads(line) for line in process.stdout.read().splitlines()]
        assert [r["query"] for r in rest] == QUERIES[1:]
        assert process.wait(timeout=120) == 0
        assert process.stderr.read() == b""  # not a terminal: no progress, and no library noise
    finally:
        process.kill()
        process.wait()


def test_evidence_shows_ranks_not_fused_scores(capsys, text_path):
    code, out, err = cli(capsys, "summarize", text_path, "-q", "What happened to the bridge budget?", "-p", "extractive")
    assert code == 0, err
    evidence = [line.strip() for line in out.splitlines() if line.strip().startswith("[")]
    assert evidence and not any(" score " in line for line in evidence)
    ranks = sorted(int(line.split("rank #")[1].split()[0]) for line in evidence)
    assert ranks == list(range(1, len(ranks) + 1))  # every rank once, 1 = most relevant
    best = next(line for line in evidence if "rank #1 " in line)
    assert "bridge" in best


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_only_on_a_terminal():
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        status = StatusLine(stream)
        status.show("answering 1 of 3...")
        status.clear()
    assert "answering 1 of 3..." in terminal.getvalue() and terminal.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""


def test_status_line_shows_the_answer_being_written_within_the_terminal_width(monkeypatch):
    """On a terminal the draft streams into the status line, its end only, never wider than the terminal."""
    import os

    from qfsum.cli.summarize import answers

    monkeypatch.setattr("shutil.get_terminal_size", lambda *a, **k: os.terminal_size((48, 20)))

    class Writing:  # what answers() needs of a pipeline: a batch size, and summarize_many with on_text
        config = type("C", (), {"writer": type("W", (), {"batch_size": 4})()})()

        def summarize_many(self, document, queries, on_text=None):
            for i, _ in enumerate(queries):
                for piece in ("The overrun was ", "120,000; they will ", "apply to the heritage\nfund."):
                    if on_text:
                        on_text(i, piece)
            return [f"answer to {q}" for q in queries]

    terminal = _Terminal()
    got = list(answers(Writing(), "doc", ["q1", "q2"], StatusLine(terminal)))
    assert got == ["answer to q1", "answer to q2"]
    lines = [line.removeprefix("\x1b[K") for line in terminal.getvalue().split("\r") if line]
    assert all(len(line) <= 47 for line in lines)  # one column spare: no wrap, so the line can be erased
    assert any(line.startswith("qfsum: answering 2 of 2: ") and line.endswith("heritage fund.") for line in lines)
    assert "qfsum: answering 1 of 2: The overrun was" in lines
    piped = io.StringIO()  # not a terminal: no callback, nothing written
    assert list(answers(Writing(), "doc", ["q1"], StatusLine(piped))) == ["answer to q1"] and piped.getvalue() == ""


# -- noise control --------------------------------------------------------------------------------------


def test_quiet_libraries_sets_defaults_unless_verbose():
    environ = {"TRANSFORMERS_VERBOSITY": "info"}  # the user's choice wins
    try:
        quiet.set_verbose(True)
        quiet.quiet_libraries(environ)
        assert environ == {"TRANSFORMERS_VERBOSITY": "info"}
        quiet.set_verbose(False)
        quiet.quiet_libraries(environ)
        assert environ["TRANSFORMERS_VERBOSITY"] == "info"
        assert environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and environ["TOKENIZERS_PARALLELISM"] == "false"
    finally:
        quiet.set_verbose(False)


def test_verbose_flag_before_or_after_the_command(capsys):
    from qfsum.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["-v", "pipelines"]).verbose is True
    assert parser.parse_args(["pipelines", "-v"]).verbose is True
    assert parser.parse_args(["pipelines"]).verbose is False


def test_loading_turns_progress_bars_off_and_restores_them():
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    with warnings.catch_warnings():  # the hub's own bars may stay off (HF_HUB_DISABLE_PROGRESS_BARS)
        warnings.simplefilter("ignore")
        hf_logging.enable_progress_bar()
    try:
        with quiet.loading():
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.is_progress_bar_enabled()
        quiet.set_verbose(True)
        with quiet.loading():
            assert hf_logging.is_progress_bar_enabled()
    finally:
        quiet.set_verbose(False)
        if not was:
            hf_logging.disable_progress_bar()


def test_hide_native_stderr_keeps_python_stderr():
    script = ("import os, sys\nfrom qfsum import quiet\nquiet.hide_native_stderr()\n"
              "os.write(2, b'native line\\n')\nprint('python line', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == 0
    assert result.stderr == b"python line\n"
    verbose = script.replace("quiet.hide_native_stderr()", "quiet.set_verbose(True); quiet.hide_native_stderr()")
    result = subprocess.run([sys.executable, "-c", verbose], capture_output=True, timeout=120)
    assert result.stderr == b"native line\npython line\n"
