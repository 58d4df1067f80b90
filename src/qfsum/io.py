"""Writing files and folders whole or not at all: a kill, a full disk or a power cut never leaves half.

Every "write to a temporary name, then rename" in qfsum goes through here, so each also fsyncs: the
data before the rename, and the folder after it (the rename itself survives a power cut).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import QfsumError


def atomic_write_lines(path: Path, lines: Iterable[str]) -> None:
    """Write `lines` (each followed by a newline) to `path` whole or not at all.

    Any OS error (disk full, read-only folder) becomes a one-line QfsumError and leaves `path` as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for line in lines:
                f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())  # disk full often shows here, not at write()
        os.replace(tmp, path)  # atomic on POSIX: readers see the old state or the whole new file
        fsync_folder(path.parent)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise QfsumError(f"cannot write {path}: {err.strerror or err}") from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (see `atomic_write_lines`)."""
    atomic_write_lines(path, [text.removesuffix("\n")])


@contextlib.contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (unique to this process, so processes writing the same
    file never share one) for a library to write to; when the block ends without an error it replaces
    `path`, fsynced. On an error the temporary file is removed and `path` left as it was."""
    path = Path(path)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield staging
        with staging.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(staging, path)
        fsync_folder(path.parent)
    finally:
        with contextlib.suppress(OSError):
            staging.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; when the block ends without an error, it
    replaces `target`. A kill leaves the old folder or the new one, never half of either."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for file in staging.rglob("*"):
        if file.is_file():
            with file.open("rb") as f:
                os.fsync(f.fileno())
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    fsync_folder(target.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable (a no-op where folders cannot be opened, as on Windows)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
