"""Bookkeeping shared by training runs: the run record in the output folder, checkpoints, the machine.

A run folder holds `qfsum_training.json` (options, status, validation history, best step); rerunning
the same command resumes an unfinished run from its newest complete checkpoint, reports a finished
one, and refuses a folder that holds another run.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from ...errors import QfsumError
from ...io import atomic_write_text

RUN_FILE = "qfsum_training.json"


def read_run(out: Path) -> dict[str, Any] | None:
    """The run record in `out`, or None when there is none."""
    path = out / RUN_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise QfsumError(f"{path}: unreadable; remove {out} or pick another --out") from None


def write_run(out: Path, run: dict[str, Any]) -> None:
    """Write the run record whole or not at all (a kill never leaves half a file)."""
    atomic_write_text(out / RUN_FILE, json.dumps(run, indent=2))


def previous_run(out: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """The record of the same run in `out` (None for a new run); a folder of another run is refused."""
    if out.exists() and not out.is_dir():
        raise QfsumError(f"{out}: exists and is not a directory")
    previous = read_run(out)
    if previous is not None and previous.get("config") != identity:
        raise QfsumError(f"{out}: holds another training run (different options); pick another --out")
    if previous is None and out.is_dir() and any(out.iterdir()):
        raise QfsumError(f"{out}: is not empty and holds no qfsum training run; pick another --out")
    return previous


def new_session(out: Path, previous: dict[str, Any] | None, identity: dict[str, Any],
                command: str | None) -> dict[str, Any]:
    """The record of a session of a Trainer run: the previous one resumed, or a new one; `out` is made."""
    out.mkdir(parents=True, exist_ok=True)
    run = previous or {"config": identity, "command": command, "status": "training", "history": [], "best": None}
    run["sessions"] = run.get("sessions", 0) + 1
    run["seconds_before"] = run.get("seconds", 0.0)  # time of the steps an interrupted session kept
    return run


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (a kill while saving leaves one without its trainer state)."""
    if not folder.is_dir():
        return None
    found = [p for p in folder.glob("checkpoint-*")
             if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").exists()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)


def machine() -> str:
    """The device that trained, for the model card: GPU name, or CPU model and cores."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        name = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores (CPU)"


def took(seconds: float) -> str:
    """A duration for people: '42 s' or '3.5 min'."""
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"
