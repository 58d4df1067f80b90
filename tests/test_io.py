"""Files and folders written whole or not at all."""

from __future__ import annotations

import errno
import os

import pytest

from qfsum.errors import QfsumError
from qfsum.io import atomic_write_lines, atomic_write_text, staged_file, staged_folder


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.jsonl"
    atomic_write_lines(path, ["a", "b"])
    atomic_write_text(path, "c\n")
    assert path.read_text() == "c\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_a_full_disk_is_one_line_and_the_old_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl"
    atomic_write_lines(path, ["old"])

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(QfsumError, match="cannot write .*No space left"):
        atomic_write_lines(path, ["new"])
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_staged_folder_replaces_the_folder_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "best"
    with staged_folder(target) as staging:
        (staging / "weights").write_text("one")
    with pytest.raises(RuntimeError), staged_folder(target) as staging:
        (staging / "weights").write_text("half")
        raise RuntimeError("killed while saving")
    assert (target / "weights").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    with staged_folder(target) as staging:
        (staging / "weights").write_text("two")
    assert (target / "weights").read_text() == "two"


def test_staged_file_replaces_the_file_for_a_library_that_writes_to_a_path(tmp_path):
    path = tmp_path / "labels.npz"
    with staged_file(path) as staging:
        assert staging.suffix == ".npz" and staging.parent == tmp_path
        staging.write_bytes(b"new")
    with pytest.raises(RuntimeError), staged_file(path) as staging:
        staging.write_bytes(b"half")
        raise RuntimeError("killed")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["labels.npz"]
