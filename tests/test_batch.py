"""Batch jobs in one process: input validation, output order, exactly-once resume after a crash.

The Ray executor shares all of this code; tests/test_batch_ray.py kills a real Ray job.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import JSONL_RECORDS, assert_one_error_line, cli, write_jsonl
from qfsum import Pipeline
from qfsum.batch.job import BatchJob, read_records
from qfsum.batch.parts import PartStore
from qfsum.errors import QfsumError

# A pipeline factory for `--pipeline stub_pipeline:make`: the extractive LEAD pipeline, logging every
# id it computes to $QFSUM_STUB_LOG; after $QFSUM_STUB_STOP_AFTER ids it is interrupted (as by Ctrl-C) or
# stalls forever. The query "reject me" gets a QfsumError, "explode" a RuntimeError (a pipeline bug).
STUB = textwrap.dedent('''
    import os
    import time

    from qfsum import Pipeline
    from qfsum.errors import QfsumError


    class Counting:
        def __init__(self):
            self.inner = Pipeline.load("extractive-lead")
            self.config = self.inner.config

        def summarize_batch(self, items):
            if any(q == "reject me" for _, q in items):
                raise QfsumError("this query is rejected")
            if any(q == "explode" for _, q in items):
                raise RuntimeError("boom\\nsecond line")
            out = self.inner.summarize_batch(items)
            log = os.environ["QFSUM_STUB_LOG"]
            with open(log, "a") as f:
                f.write("".join(d.id + "\\n" for d, _ in items))
            stop = int(os.environ.get("QFSUM_STUB_STOP_AFTER", "0"))
            if stop and len(open(log).read().split()) > stop:
                if os.environ.get("QFSUM_STUB_STOP") == "interrupt":
                    raise KeyboardInterrupt("stopped on purpose")
                while True:  # stall: the test kills the job
                    time.sleep(1)
            return out


    def make():
        return Counting()
''')


def write_stub(folder: Path) -> str:
    (folder / "stub_pipeline.py").write_text(STUB)
    return "stub_pipeline:make"


def many_records(n: int) -> list[dict]:
    """n distinct requests from the conftest records (ids r000, r001, ...)."""
    return [dict(JSONL_RECORDS[i % len(JSONL_RECORDS)], id=f"r{i:03d}") for i in range(n)]


def output_ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def logged(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


@pytest.fixture
def stub(tmp_path, monkeypatch) -> str:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("QFSUM_STUB_LOG", str(tmp_path / "computed.log"))
    return write_stub(tmp_path)


def test_local_job_writes_one_line_per_record_in_input_order(tmp_path, jsonl_path):
    out = tmp_path / "out.jsonl"
    report = BatchJob(jsonl_path, out, "extractive-lead", executor="local", block_size=2, progress=False).run()
    assert (report.total, report.computed, report.skipped) == (3, 3, 0)
    assert output_ids(out) == ["doc1", "seg1", "seg2"]
    assert not PartStore(out).folder.exists()  # merged and cleaned up
    first = json.loads(out.read_text().splitlines()[0])
    expected = Pipeline.load("extractive-lead").summarize(JSONL_RECORDS[0]["document"], JSONL_RECORDS[0]["query"])
    assert first["summary"] == expected.text
    assert {"query", "evidence", "timings"} <= first.keys()


def test_crashed_job_resumes_without_recomputing_and_each_id_appears_once(tmp_path, stub, monkeypatch):
    records = many_records(10)
    data = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    log = tmp_path / "computed.log"
    monkeypatch.setenv("QFSUM_STUB_STOP_AFTER", "4")
    monkeypatch.setenv("QFSUM_STUB_STOP", "interrupt")
    with pytest.raises(KeyboardInterrupt, match="stopped on purpose"):
        BatchJob(data, out, stub, executor="local", block_size=2, progress=False).run()
    written = set(PartStore(out).done())
    assert written == {"r000", "r001", "r002", "r003"}  # the crashed block (r004, r005) was not written
    assert not out.exists()

    monkeypatch.delenv("QFSUM_STUB_STOP_AFTER")
    first_run = logged(log)
    report = BatchJob(data, out, stub, executor="local", block_size=2, progress=False).run()
    second_run = logged(log)[len(first_run):]
    assert output_ids(out) == [r["id"] for r in records]  # every id exactly once, in input order
    assert not written & set(second_run)  # nothing already written was computed again
    assert sorted(second_run) == [f"r{i:03d}" for i in range(4, 10)]
    assert (report.skipped, report.computed) == (4, 6)


def test_a_half_written_part_is_ignored(tmp_path, stub):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(4))
    out = tmp_path / "out.jsonl"
    store = PartStore(out)
    store.folder.mkdir()
    (store.folder / ".part-000000.jsonl.tmp").write_text('{"id": "r000", "summary": "trunc')
    BatchJob(data, out, stub, executor="local", progress=False).run()
    assert output_ids(out) == ["r000", "r001", "r002", "r003"]
    assert sorted(logged(tmp_path / "computed.log")) == ["r000", "r001", "r002", "r003"]


def test_failing_records_get_one_line_errors_and_the_rest_of_their_block_is_answered(tmp_path, stub):
    records = many_records(5)
    records[1]["query"] = "reject me"
    records[3]["query"] = "explode"
    data = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "out.jsonl"
    report = BatchJob(data, out, stub, executor="local", block_size=5, progress=False).run()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[1] == {"id": "r001", "error": "this query is rejected"}
    assert lines[3] == {"id": "r003", "error": "RuntimeError: boom second line"}
    assert all("summary" in lines[i] for i in (0, 2, 4))
    assert report.errors == 2
    assert sorted(logged(tmp_path / "computed.log")) == ["r000", "r002", "r004"]  # each computed once, alone


def test_rerunning_a_finished_job_computes_nothing(tmp_path, stub, jsonl_path):
    out = tmp_path / "out.jsonl"
    BatchJob(jsonl_path, out, stub, executor="local", progress=False).run()
    before = out.read_text()
    report = BatchJob(jsonl_path, out, stub, executor="local", progress=False).run()
    assert report.computed == 0 and out.read_text() == before
    assert len(logged(tmp_path / "computed.log")) == 3
    other = write_jsonl(tmp_path / "other.jsonl", many_records(2))
    with pytest.raises(QfsumError, match="not this input's output"):
        BatchJob(other, out, stub, executor="local", progress=False).run()


def test_records_without_id_are_named_by_line(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(json.dumps({"document": "A text.", "query": "q?"}) + "\n\n"
                    + json.dumps({"document": "B text.", "query": "r?"}) + "\n")
    assert [r.id for r in read_records(data)] == ["line-1", "line-3"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a", "document": "x", "query": "q"}\n{"id": "a", "document": "y", "query": "q"}\n',
         "in.jsonl:2: duplicate id 'a' (first on line 1)"),
        ('{"id": 1, "document": "x", "query": "q"}\n{"id": "1", "document": "y", "query": "q"}\n',
         "in.jsonl:2: duplicate id '1' (first on line 1)"),
        ("\n\n", "no records (the file is empty)"),
        ("id,document,query\n1,x,q\n",
         "in.jsonl:1: malformed JSON at line 1, column 1: Expecting value (and no line of the file is a valid request)"),
    ],
)
def test_bad_input_files_fail_fast_with_the_line(tmp_path, content, message):
    data = tmp_path / "in.jsonl"
    data.write_text(content)
    with pytest.raises(QfsumError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_records(data)


GOOD = '{"id": "ok", "document": "A text.", "query": "q?"}'


@pytest.mark.parametrize(
    ("line", "id", "message"),
    [
        ("{oops", "line-2", "in.jsonl:2: malformed JSON at line 1, column 2"),
        ("[1, 2]", "line-2", "in.jsonl:2: expected a JSON object"),
        ("[" * 100_000, "line-2", "in.jsonl:2: JSON nested too deeply"),
        ('{"id": "a", "document": "x"}', "a", "in.jsonl:2: needs a non-empty 'query'"),
        ('{"id": "a", "document": "x", "query": "\\udc00"}', "a", "in.jsonl:2: query: holds a lone UTF-16 surrogate"),
        ('{"id": "a", "document": "\\ud800 x", "query": "q"}', "a", "lone UTF-16 surrogate"),
        ('{"id": "\\udc00", "document": "x", "query": "q"}', "line-2", "in.jsonl:2: id: holds a lone UTF-16"),
        ('{"id": [1], "document": "x", "query": "q"}', "line-2", "in.jsonl:2: 'id' must be a string or an integer"),
        ('{"id": true, "document": "x", "query": "q"}', "line-2", "in.jsonl:2: 'id' must be a string or an integer"),
    ],
)
def test_a_bad_record_becomes_an_error_record_not_a_failure(tmp_path, line, id, message):
    data = tmp_path / "in.jsonl"
    data.write_text(f"{GOOD}\n{line}\n")
    good, bad = read_records(data)
    assert good.error is None
    assert bad.id == id and message in bad.error


def test_a_binary_line_becomes_an_error_record(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_bytes(GOOD.encode() + b"\n\x00\xff\n" + b'{"id": "c", "document": "x\xff", "query": "q"}\n')
    _, nul, latin = read_records(data)
    assert nul.id == "line-2"
    assert nul.error == f"{data}:2: looks like a binary file (NUL byte at offset 0), expected UTF-8 text"
    assert latin.id == "line-3" and "not valid UTF-8" in latin.error


def test_a_job_with_bad_records_answers_the_rest_and_counts_the_errors(tmp_path, stub):
    data = tmp_path / "in.jsonl"
    data.write_text("\n".join([GOOD, '{"id": "s", "document": "x", "query": "\\udc00"}', "{oops",
                               GOOD.replace('"ok"', '"ok2"')]) + "\n")
    out = tmp_path / "out.jsonl"
    report = BatchJob(data, out, stub, executor="local", progress=False).run()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ["ok", "s", "line-3", "ok2"]
    assert ["error" in line for line in lines] == [False, True, True, False]
    assert (report.computed, report.errors) == (4, 2)
    assert sorted(logged(tmp_path / "computed.log")) == ["ok", "ok2"]  # bad records never reach the pipeline


def test_batch_cli_local_prints_a_summary_line(tmp_path, capsys, jsonl_path):
    out = tmp_path / "answers.jsonl"
    code, stdout, stderr = cli(capsys, "batch", "--input", jsonl_path, "--output", out, "--pipeline",
                               "extractive-lead", "--executor", "local", "--no-progress")
    assert code == 0
    assert stdout.startswith("batch: 3 records in ") and "records/s" in stdout and "0 already done" in stdout
    assert stdout.rstrip().endswith("0 error lines")
    assert stderr == "batch: executor local (--executor)\n"
    assert output_ids(out) == ["doc1", "seg1", "seg2"]


def test_batch_cli_exits_1_when_some_records_are_error_lines(tmp_path, capsys):
    records = many_records(3)
    records[2]["query"] = "\udc00"  # written as the JSON escape: valid JSON, not valid text
    data = write_jsonl(tmp_path / "in.jsonl", records)
    out = tmp_path / "answers.jsonl"
    args = ["batch", "--input", data, "--output", out, "--pipeline", "extractive-lead", "--no-progress"]
    code, stdout, _ = cli(capsys, *args)
    assert code == 1 and stdout.rstrip().endswith("3 in " + str(out) + ", 1 error line")
    assert "lone UTF-16 surrogate" in json.loads(out.read_text().splitlines()[2])["error"]
    code, stdout, _ = cli(capsys, *args)  # a rerun computes nothing and reports the same
    assert code == 1 and "0 records in" in stdout and "3 already done" in stdout


def test_batch_help_documents_the_exit_codes(capsys):
    code, stdout, _ = cli(capsys, "batch", "--help")
    assert code == 0
    assert "exit status:" in stdout and "1  the job finished, but some records are error lines" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "missing.jsonl"], "no such file"),
        (["--input", "{jsonl}", "--block-size", "0"], "--block-size must be >= 1"),
        (["--input", "{jsonl}", "--pipeline", "nonexistent_module_x:make"], "cannot load pipeline factory"),
        (["--input", "{jsonl}", "--pipeline", "no-such-pipeline"], "unknown pipeline"),
    ],
)
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_batch_cli_user_errors_are_one_line(tmp_path, capsys, jsonl_path, args, message, executor):
    """With Ray too: the pipeline is checked in the driver before Ray starts, not in the actors."""
    args = [str(jsonl_path) if a == "{jsonl}" else a for a in args]
    code, _, err = cli(capsys, "batch", *args, "--output", tmp_path / "o.jsonl", "--executor", executor,
                       "--no-progress")
    assert message in assert_one_error_line(code, err)


def test_inputs_over_the_one_document_size_limit_are_read(tmp_path, monkeypatch):
    import qfsum.readers

    monkeypatch.setattr(qfsum.readers, "MAX_FILE_BYTES", 100)  # a corpus is not one document
    data = write_jsonl(tmp_path / "in.jsonl", many_records(5))
    assert data.stat().st_size > 100
    assert [r.id for r in read_records(data)] == [f"r{i:03d}" for i in range(5)]
