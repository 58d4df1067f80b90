"""Exactly-once output for batch jobs: numbered part files written atomically, then one merge.

Every completed block of results becomes `OUT.parts/part-NNNNNN.jsonl`, written to a temporary
file, flushed to disk and renamed into place: a part either exists whole or not at all, even if
the job is killed mid-write. A restarted job reads the ids already in OUT and in the parts and
skips them. When every id is done, the parts are merged into OUT in input order (again tmp +
rename) and the parts folder is removed; a job killed between the two finds OUT complete.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from ..errors import QfsumError
from ..io import atomic_write_lines
from ..readers import decode_text, parse_json

PART_NAME = re.compile(r"part-(\d+)\.jsonl")


class Line(NamedTuple):
    """One output line on disk and whether it is an error line (`{"id", "error"}`)."""

    text: str
    error: bool


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and write a probe file there: fail before any work, not after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".qfsum-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise QfsumError(f"cannot write to {folder}: {err.strerror or err}") from None


def read_lines(path: Path, hint: str) -> Iterator[tuple[str, Line]]:
    """(id, line) of every output line of `path`, streamed.

    An unterminated last line that does not parse is a write cut short: it is dropped with a warning
    (its record is computed again). Any other bad line is a one-line error naming the file, the line
    and `hint` (what the user can do about it).
    """
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield _parse_line(raw, where)
            except QfsumError as err:
                if raw.endswith(b"\n"):
                    raise QfsumError(f"{err}; {hint}") from None
                print(f"qfsum: warning: {where}: last line cut short, dropped (its record is computed again)",
                      file=sys.stderr)


def _parse_line(raw: bytes, where: str) -> tuple[str, Line]:
    text = decode_text(raw, where).strip()
    data = parse_json(text, where)
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise QfsumError(f"{where}: not a batch output line (a JSON object with a string 'id')")
    return data["id"], Line(text, "error" in data)


class PartStore:
    """The output file of one job and its parts folder."""

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.folder = self.output.with_name(self.output.name + ".parts")
        self._next: int | None = None  # the next part number, found once: listing per write is quadratic

    def parts(self) -> list[Path]:
        """The part files in write order (by number: `part-1000000` comes after `part-999999`)."""
        if not self.folder.is_dir():
            return []
        numbered = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := PART_NAME.fullmatch(p.name))]
        return [p for _, p in sorted(numbered)]

    def done(self, ids: Collection[str] | None = None) -> dict[str, Line]:
        """id -> output line of every record already written, in OUT and in the parts.

        OUT holding an id twice, or one not in `ids` (the input's, if given), means OUT is not this
        input's output: that is an error, so that a wrong --output is never overwritten.
        """
        if self.output.exists() and not self.output.is_file():
            raise QfsumError(f"{self.output}: not a file; pick another --output")
        done: dict[str, Line] = {}
        known = None if ids is None else set(ids)
        if self.output.is_file():
            hint = "remove it or pick another --output"
            for id, line in read_lines(self.output, hint):
                if id in done or (known is not None and id not in known):
                    raise QfsumError(f"{self.output} exists and is not this input's output (id '{id}'): {hint}")
                done[id] = line
        for part in self.parts():
            done.update(read_lines(part, "remove that part file to compute its records again"))
        return done

    def is_merged(self, done: dict[str, Line], order: Sequence[str]) -> bool:
        """Whether OUT alone already holds every id of `order`, in that order (nothing to merge)."""
        return not self.folder.exists() and list(done) == list(order)

    def write(self, lines: Sequence[str]) -> Path:
        """Write one block of output lines (JSON objects with an `id`) as the next part."""
        if self._next is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            existing = self.parts()
            self._next = int(PART_NAME.fullmatch(existing[-1].name).group(1)) + 1 if existing else 0
        path = self.folder / f"part-{self._next:06d}.jsonl"
        atomic_write_lines(path, lines)
        self._next += 1
        return path

    def merge(self, order: Sequence[str]) -> dict[str, Line]:
        """Write OUT with one line per id of `order`, then remove the parts; return what OUT holds."""
        done = self.done(order)
        missing = [i for i in order if i not in done]
        if missing:
            raise QfsumError(f"{len(missing)} records have no output yet (first: {missing[0]}); rerun to finish")
        if not self.is_merged(done, order):
            atomic_write_lines(self.output, (done[i].text for i in order))
            shutil.rmtree(self.folder, ignore_errors=True)
        return {i: done[i] for i in order}

