"""The Hugging Face `Trainer` pieces the extractor and seq2seq families share: their arguments, a
progress bar with the loss, run bookkeeping with the best model on validation, the validation sample,
and the best model moved to the top of the run folder at the end."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from ...assets import default_device
from ...document import Example
from ...io import staged_folder

CHECKPOINTS, BEST = "checkpoints", "best"


def trainer_arguments(config: Any, out: Path, validate: bool, precision: torch.dtype) -> dict[str, Any]:
    """`TrainingArguments` fields both families set alike, from a config with the shared schedule
    fields (epochs, max_steps, batch_size, lr, warmup, log/eval/save_steps, seed)."""
    return dict(
        output_dir=str(out / CHECKPOINTS),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.lr,
        warmup_steps=config.warmup,  # a float below 1 is a fraction of the steps
        logging_steps=config.log_steps,
        eval_strategy="steps" if validate else "no",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=1,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=True,  # LossProgress replaces the Trainer's bar
        use_cpu=default_device() == "cpu",
        dataloader_num_workers=0,
        bf16=precision == torch.bfloat16,
        fp16=precision == torch.float16,
    )


def drop_default_progress(trainer: Any) -> Any:
    """Remove the Trainer's own bar (or, with disable_tqdm, its raw log printer): ours replace them.
    Removed by exact type, since remove_callback(cls) would also take our ProgressCallback subclass."""
    for callback in list(trainer.callback_handler.callbacks):
        if type(callback) in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(callback)
    return trainer


def sample_examples(examples: Sequence[Example], limit: int | None, seed: int = 0) -> list[Example]:
    """About `limit` examples taken as whole documents (all their queries), documents drawn at random.

    Whole documents keep validation of a bi-encoder cheap: each document is encoded once.
    The result keeps the input order. None or 0 = every example.
    """
    if not limit or limit >= len(examples):
        return list(examples)
    documents: dict[int, list[int]] = {}
    for i, example in enumerate(examples):
        documents.setdefault(id(example.document), []).append(i)
    groups = list(documents.values())
    chosen: list[int] = []
    for k in np.random.default_rng(seed).permutation(len(groups)):
        chosen.extend(groups[k])
        if len(chosen) >= limit:
            break
    return [examples[i] for i in sorted(chosen[:limit])]


def validation_metrics(logs: dict[str, Any] | None, reported: Sequence[str]) -> dict[str, float]:
    """Our validation metrics (`reported`) from the Trainer's logs, where they carry an "eval_" prefix."""
    return {k[5:]: float(v) for k, v in (logs or {}).items() if k.startswith("eval_") and k[5:] in reported}


class LossProgress(ProgressCallback):
    """The Trainer's progress bar, with the running loss beside it and validation results below it."""

    def __init__(self, reported: Sequence[str]) -> None:
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
    """Keeps the best model on validation (by `primary`, one of `reported`) in `best_dir`, saved there
    by `save(model, folder)`, and the run record (validation history, best step, steps and seconds at
    the last checkpoint) written with `write`."""

    def __init__(self, run: dict[str, Any], best_dir: Path, save: Callable[[Any, Path], None],
                 reported: Sequence[str], primary: str, write: Callable[[], None], seconds: Callable[[], float]) -> None:
        self.run, self.best_dir, self.save = run, best_dir, save
        self.reported, self.primary = reported, primary
        self.write, self.seconds = write, seconds

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        values = validation_metrics(metrics, self.reported)
        if not values:
            return
        history = [h for h in self.run["history"] if h["step"] != state.global_step]  # a resumed run redoes steps
        self.run["history"] = history + [{"step": state.global_step, "epoch": state.epoch, **values}]
        best = self.run.get("best")
        if best is None or values[self.primary] > best[self.primary]:
            with staged_folder(self.best_dir) as staging:  # never half a best model on disk
                self.save(model, staging)
            self.run["best"] = {"step": state.global_step, **values}
        self.write()

    def on_save(self, args, state, control, **kwargs):
        self.run["step"] = state.global_step
        self.run["seconds"] = self.seconds()
        self.write()


def keep_best(out: Path, save_last: Callable[[], None]) -> None:
    """Leave the best model at the top of `out` (its files moved from `out/best`), or call `save_last`
    to save the last one where validation kept none; then drop the checkpoints."""
    best = out / BEST
    if best.is_dir():
        for path in best.iterdir():
            target = out / path.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(path), target)
        best.rmdir()
    else:
        save_last()
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
