"""Trainer callbacks of extractor training: a progress bar with the loss, and run bookkeeping."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

from .validation import PRIMARY_METRIC, REPORTED


def validation_metrics(logs: dict[str, Any] | None, reported: Sequence[str] = REPORTED) -> dict[str, float]:
    """Our validation metrics (`reported`) from the Trainer's logs, where they carry an "eval_" prefix."""
    return {k[5:]: float(v) for k, v in (logs or {}).items() if k.startswith("eval_") and k[5:] in reported}


class LossProgress(ProgressCallback):
    """The Trainer's progress bar, with the running loss beside it and validation results below it."""

    def __init__(self, reported: Sequence[str] = REPORTED) -> None:
        super().__init__()
        self.reported = reported

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is None or not logs:
            return
        if "loss" in logs:
            self.training_bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        if shown := validation_metrics(logs, self.reported):
            self.training_bar.write(f"step {state.global_step}: " + "  ".join(f"{k} {v:.2f}" for k, v in shown.items()))


class RunBookkeeping(TrainerCallback):
    """Keeps the best model on validation (by `PRIMARY_METRIC`) in `best_dir`, and the run record
    (validation history, best step, steps and seconds at the last checkpoint) written with `write`."""

    def __init__(self, run: dict[str, Any], best_dir: Path, write: Callable[[], None], seconds: Callable[[], float]) -> None:
        self.run, self.best_dir, self.write, self.seconds = run, best_dir, write, seconds

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        values = validation_metrics(metrics)
        if not values:
            return
        history = [h for h in self.run["history"] if h["step"] != state.global_step]  # a resumed run redoes steps
        self.run["history"] = history + [{"step": state.global_step, "epoch": state.epoch, **values}]
        best = self.run.get("best")
        if best is None or values[PRIMARY_METRIC] > best[PRIMARY_METRIC]:
            staging = self.best_dir.with_name(f".{self.best_dir.name}.tmp")
            shutil.rmtree(staging, ignore_errors=True)
            model.save(str(staging), create_model_card=False)
            shutil.rmtree(self.best_dir, ignore_errors=True)
            staging.rename(self.best_dir)  # never half a best model on disk
            self.run["best"] = {"step": state.global_step, **values}
        self.write()

    def on_save(self, args, state, control, **kwargs):
        self.run["step"] = state.global_step
        self.run["seconds"] = self.seconds()
        self.write()
