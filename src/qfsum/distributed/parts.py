"""Exactly-once output for batch jobs: numbered part files written atomically, then one merge.

Every completed block of results becomes `OUT.parts/part-NNNNNN.jsonl`, written to a temporary
file, flushed to disk and renamed into place: a part either exists whole or not at all, even if
the job is killed mid-write. A restarted job reads the ids already in the parts and skips them.
When every id is done, the parts are merged into OUT in input order (again tmp + rename) and the
parts folder is removed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import QfsumError

PART_GLOB = "part-*.jsonl"


def _atomic_write(path: Path, lines: Iterable[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic on POSIX: readers see the old state or the whole new file


class PartStore:
    """The parts folder of one output file."""

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.folder = self.output.with_name(self.output.name + ".parts")

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob(PART_GLOB)) if self.folder.is_dir() else []

    def done(self) -> dict[str, str]:
        """id -> output line, for every record already written (temporary files are ignored)."""
        done: dict[str, str] = {}
        for part in self.parts():
            for line in part.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    done[str(json.loads(line)["id"])] = line
        return done

    def write(self, lines: Sequence[str]) -> Path:
        """Write one block of output lines (JSON objects with an `id`) as the next part."""
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = self.parts()
        number = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        path = self.folder / f"part-{number:06d}.jsonl"
        _atomic_write(path, lines)
        return path

    def merge(self, order: Sequence[str]) -> int:
        """Write the output file with one line per id of `order`, then remove the parts."""
        done = self.done()
        missing = [i for i in order if i not in done]
        if missing:
            raise QfsumError(f"{len(missing)} records have no output yet (first: {missing[0]}); rerun to finish")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.output, (done[i] for i in order))
        shutil.rmtree(self.folder, ignore_errors=True)
        return len(order)
