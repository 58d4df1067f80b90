"""Batch jobs after things went wrong: a kill at any point, damaged parts or output, a full disk,
a read-only folder; and the choice of executor. In one process, with the stub pipeline of test_batch.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import assert_one_error_line, cli, write_jsonl
from qfsum.batch import job as job_module
from qfsum.batch.job import BatchJob, choose_executor
from qfsum.batch.parts import PartStore
from test_batch import logged, many_records, output_ids, stub  # noqa: F401 (stub is a fixture)


def line(id: str) -> str:
    return json.dumps({"id": id, "query": "q", "summary": f"summary of {id}", "evidence": [], "timings": {}})


def run(data: Path, out: Path, spec: str):
    return BatchJob(data, out, spec, executor="local", block_size=2, progress=False).run()


def test_a_kill_between_the_final_rename_and_the_cleanup_recomputes_nothing(tmp_path, stub, monkeypatch):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(6))
    out = tmp_path / "out.jsonl"
    log = tmp_path / "computed.log"
    store = PartStore(out)
    with monkeypatch.context() as m:
        m.setattr(shutil, "rmtree", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt("killed")))
        with pytest.raises(KeyboardInterrupt):
            run(data, out, stub)
    merged = out.read_text()
    assert output_ids(out) == [f"r{i:03d}" for i in range(6)] and len(store.parts()) == 3
    store.parts()[0].unlink()  # the cleanup had begun
    report = run(data, out, stub)
    assert (report.computed, report.skipped) == (0, 6)
    assert len(logged(log)) == 6  # nothing computed again
    assert out.read_text() == merged and not store.folder.exists()


def test_part_numbers_sort_and_continue_numerically(tmp_path, stub):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(4))
    out = tmp_path / "out.jsonl"
    store = PartStore(out)
    store.folder.mkdir()
    (store.folder / "part-999999.jsonl").write_text(line("r000") + "\n")
    (store.folder / "part-1000000.jsonl").write_text(line("r001") + "\n")
    assert [p.name for p in store.parts()] == ["part-999999.jsonl", "part-1000000.jsonl"]  # not as text
    assert store.write([line("r002")]).name == "part-1000001.jsonl"  # after the largest, overwriting none
    assert list(store.done()) == ["r000", "r001", "r002"]
    run(data, out, stub)
    assert output_ids(out) == ["r000", "r001", "r002", "r003"]
    assert logged(tmp_path / "computed.log") == ["r003"]


def test_a_part_cut_short_loses_only_its_last_record(tmp_path, stub, capsys):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(4))
    out = tmp_path / "out.jsonl"
    store = PartStore(out)
    store.folder.mkdir()
    (store.folder / "part-000000.jsonl").write_text(line("r000") + "\n" + line("r001")[:20])
    run(data, out, stub)
    assert output_ids(out) == ["r000", "r001", "r002", "r003"]
    assert sorted(logged(tmp_path / "computed.log")) == ["r001", "r002", "r003"]
    assert "part-000000.jsonl:2: last line cut short, dropped" in capsys.readouterr().err


def test_an_output_cut_short_is_completed(tmp_path, stub):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(4))
    out = tmp_path / "out.jsonl"
    out.write_text(line("r000") + "\n" + line("r001") + "\n" + line("r002")[:30])
    report = run(data, out, stub)
    assert output_ids(out) == ["r000", "r001", "r002", "r003"]
    assert sorted(logged(tmp_path / "computed.log")) == ["r002", "r003"]
    assert (report.skipped, report.computed) == (2, 2)


def batch_cli(capsys, data: Path, out: Path, spec: str) -> tuple[int, str, str]:
    return cli(capsys, "batch", "--input", data, "--output", out, "--pipeline", spec, "--executor", "local",
               "--block-size", "2", "--no-progress")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("hello world\n", "out.jsonl:1: malformed JSON at line 1, column 1"),
        (line("r000") + "\n[1, 2]\n", "out.jsonl:2: not a batch output line"),
        (line("r000") + "\n" + line("r000") + "\n", "exists and is not this input's output (id 'r000')"),
        (line("zzz") + "\n", "exists and is not this input's output (id 'zzz')"),
        ("\x00\x01binary\n", "out.jsonl:1: looks like a binary file"),
    ],
)
def test_an_output_that_is_not_ours_is_a_one_line_error_and_is_left_alone(tmp_path, stub, capsys, content, message):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(3))
    out = tmp_path / "out.jsonl"
    out.write_text(content)
    error = assert_one_error_line(*batch_cli(capsys, data, out, stub)[::2])
    assert message in error and "remove it or pick another --output" in error
    assert out.read_text() == content and not logged(tmp_path / "computed.log")


@pytest.mark.parametrize("content", ['{"summary": "no id"}\n', '{"id": 7}\n', "garbage\n" + line("r001") + "\n"])
def test_a_bad_part_line_is_a_one_line_error_naming_the_part(tmp_path, stub, capsys, content):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(3))
    out = tmp_path / "out.jsonl"
    store = PartStore(out)
    store.folder.mkdir()
    (store.folder / "part-000003.jsonl").write_text(content)
    error = assert_one_error_line(*batch_cli(capsys, data, out, stub)[::2])
    assert "out.jsonl.parts/part-000003.jsonl:1: " in error and "remove that part file" in error


def refuse_writes_in(folder: Path, monkeypatch) -> None:
    """Make `folder` read-only; as root (who may write anyway), refuse new files there as the kernel
    would for anyone else."""
    folder.chmod(0o555)
    if os.geteuid() == 0:
        real_open = os.open

        def refusing_open(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and Path(path).parent == folder:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refusing_open)


def test_a_read_only_output_folder_fails_before_any_work(tmp_path, stub, capsys, monkeypatch):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(3))
    folder = tmp_path / "answers"
    folder.mkdir()
    refuse_writes_in(folder, monkeypatch)
    try:
        error = assert_one_error_line(*batch_cli(capsys, data, folder / "out.jsonl", stub)[::2])
    finally:
        folder.chmod(0o755)
    assert error == f"qfsum: error: cannot write to {folder}: Permission denied"
    assert not logged(tmp_path / "computed.log") and list(folder.iterdir()) == []


@pytest.mark.parametrize(("full_at", "recomputed"), [(".part-000001.jsonl.tmp", 4), (".out.jsonl.tmp", 0)])
def test_a_full_disk_stops_the_job_with_one_line_and_no_damaged_file(tmp_path, stub, capsys, monkeypatch,
                                                                      full_at, recomputed):
    data = write_jsonl(tmp_path / "in.jsonl", many_records(6))
    out = tmp_path / "out.jsonl"
    log = tmp_path / "computed.log"
    real_fsync = os.fsync

    def full_fsync(fd: int) -> None:  # the disk fills up while this one file is written
        if Path(f"/proc/self/fd/{fd}").resolve().name == full_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to tell which file is synced")
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", full_fsync)
        code, _, err = batch_cli(capsys, data, out, stub)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("qfsum: error: cannot write ") and "No space left on device" in err
    assert not out.exists() and not list(tmp_path.rglob("*.tmp"))  # no final file, no half-written one
    computed = len(logged(log))
    code, _, _ = batch_cli(capsys, data, out, stub)  # space freed: the rerun finishes
    assert code == 0 and output_ids(out) == [f"r{i:03d}" for i in range(6)]
    assert len(logged(log)) - computed == recomputed  # the blocks written before the disk filled are kept


def test_output_must_not_be_the_input_or_a_folder(tmp_path, capsys, jsonl_path):
    for out, message in [(jsonl_path, "--output is the input file"), (tmp_path, "not a file")]:
        code, _, err = cli(capsys, "batch", "--input", jsonl_path, "--output", out, "--no-progress")
        assert message in assert_one_error_line(code, err)


def test_auto_executor_starts_ray_only_where_it_can_help(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(job_module, "usable_cpus", lambda: 2)
    executor, why = choose_executor("auto", None)
    assert executor == "local" and why.startswith("auto: 2 CPUs; a local Ray helps from 8 CPUs")
    assert choose_executor("local", "ray://head:10001") == ("local", "--executor")
    pytest.importorskip("ray")
    assert choose_executor("auto", "ray://head:10001")[0] == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert choose_executor("auto", None)[0] == "ray"
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(job_module, "usable_cpus", lambda: 32)
    assert choose_executor("auto", None) == ("ray", "auto: 32 CPUs")


def test_the_cli_says_which_executor_it_chose(tmp_path, capsys, jsonl_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(job_module, "usable_cpus", lambda: 2)
    code, _, err = cli(capsys, "batch", "--input", jsonl_path, "--output", tmp_path / "o.jsonl", "--pipeline",
                       "extractive-lead", "--no-progress")
    assert code == 0 and err.startswith("batch: executor local (auto: 2 CPUs;") and len(err.splitlines()) == 1
