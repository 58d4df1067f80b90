"""Distillation of a teacher into the real-time writer.

- sequence level: the teacher (a causal LM, or a whole qfsum pipeline) answers every training
  (query, passage) pair, labelled or not; its answers are cached in `teacher.jsonl` (a task
  file, reused by reruns) and the student is fine-tuned on them as in SFT;
- token level (teacher and student share a tokenizer): the loss mixes the label cross-entropy with
  the KL divergence between the teacher's and the student's next-token distributions on the
  answer tokens, both softened by a temperature T (Hinton et al., 2015):
  `(1 - alpha) * CE + alpha * T^2 * KL(p_teacher^T || p_student^T)`.

`mode="both"` trains on the teacher's answers with the token-level loss.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ...errors import QfsumError
from .sft import (
    Job,
    TrainConfig,
    generate_answers,
    load_trainable,
    resume_point,
    run_training,
    sft_loss,
    task_splits,
)
from .taskdata import (
    IGNORE,
    TaskExample,
    collate,
    encode,
    read_task_file,
    write_task_file,
)

TEACHER_FILE = "teacher.jsonl"
MODES = ("sequence", "token", "both")


@dataclass
class DistillOptions:
    """Distillation's own knobs (the rest is `TrainConfig`; its `base` is the student)."""

    teacher: str  # a causal LM (name, directory, hub id, adapter) or a pipeline (name or directory)
    mode: str = "sequence"  # sequence | token | both
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the KL term (token level)
    max_new_tokens: int = 120  # teacher answers (sequence level)


def kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), averaged over the positions `mask` selects.

    Logits (B, T, V), mask (B, T) of 0/1. The T^2 factor keeps gradients comparable across temperatures.
    """
    t = temperature
    student = F.log_softmax(student_logits.float() / t, -1)
    teacher = F.log_softmax(teacher_logits.float() / t, -1)
    per_position = (teacher.exp() * (teacher - student)).sum(-1)  # (B, T)
    mask = mask.float()
    return t * t * (per_position * mask).sum() / mask.sum().clamp(min=1)


def same_tokenizer(a: Any, b: Any) -> bool:
    """True when two tokenizers map the same strings to the same ids (token-level KL is then meaningful)."""
    return a.get_vocab() == b.get_vocab()


def token_loss(student: Any, teacher: Any, batch: list[dict[str, list[int]]], pad: int, options: DistillOptions) -> torch.Tensor:
    """Label cross-entropy mixed with the temperature-softened KL to the teacher, on answer tokens."""
    tensors = {k: v.to(student.device) for k, v in collate(batch, pad).items()}
    out = student(**tensors)
    with torch.no_grad():
        teacher_logits = teacher(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"]).logits
    answer = (tensors["labels"][:, 1:] != IGNORE)  # (B, T-1): positions whose next token is an answer token
    kl = kl_loss(out.logits[:, :-1], teacher_logits[:, :-1], answer, options.temperature)
    return (1 - options.alpha) * out.loss + options.alpha * kl


# -- teacher answers ----------------------------------------------------------------------------------


def _is_pipeline(name: str) -> bool:
    from ...pipeline import CONFIG_FILE, packaged_pipelines

    return name in packaged_pipelines() or (Path(name) / CONFIG_FILE).is_file()


def teacher_answers(teacher: str, examples: Sequence[TaskExample], max_prompt: int, max_new_tokens: int,
                    progress: bool = True) -> list[str]:
    """The teacher's answer to each (query, passage): a pipeline reads the passage as the document."""
    if _is_pipeline(teacher):
        from ...pipeline import Pipeline

        pipeline = Pipeline.load(teacher)
        return [pipeline.summarize(e.passage, e.query).text
                for e in tqdm(examples, desc="teacher", unit="ex", disable=not progress)]
    from ...assets import load_generator

    model, tokenizer = load_generator(teacher)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return generate_answers(model, tokenizer, list(examples), max_prompt, max_new_tokens, progress=progress)


def teacher_examples(out: Path, options: DistillOptions, examples: Sequence[TaskExample], max_prompt: int,
                     progress: bool = True) -> list[TaskExample]:
    """The examples with the teacher's answers as targets, cached in `out/teacher.jsonl`."""
    path, meta = out / TEACHER_FILE, out / f"{TEACHER_FILE}.meta.json"
    identity = {"teacher": options.teacher, "max_new_tokens": options.max_new_tokens, "ids": [e.id for e in examples]}
    if path.exists() and meta.exists() and json.loads(meta.read_text()) == identity:
        return read_task_file(path)
    answers = teacher_answers(options.teacher, examples, max_prompt, options.max_new_tokens, progress)
    labelled = [TaskExample(e.id, e.query, e.passage, a) for e, a in zip(examples, answers, strict=True) if a.strip()]
    if not labelled:
        raise QfsumError(f"the teacher '{options.teacher}' wrote no answers")
    out.mkdir(parents=True, exist_ok=True)
    write_task_file(path, labelled)
    meta.write_text(json.dumps(identity) + "\n")
    return labelled


def train_distill(config: TrainConfig, options: DistillOptions, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Distil `options.teacher` into `config.base` (the student); resumable like SFT."""
    if options.mode not in MODES:
        raise QfsumError(f"unknown distillation mode '{options.mode}' (choose from {', '.join(MODES)})")
    if options.temperature <= 0 or not 0 <= options.alpha <= 1:
        raise QfsumError("distillation needs temperature > 0 and 0 <= alpha <= 1")
    previous, checkpoint = resume_point(config)
    if previous is not None and previous.get("status") == "done":
        return {**previous, "reported": True}
    model, tokenizer = load_trainable(config, checkpoint)
    train, val = task_splits(config, tokenizer, progress)
    if options.mode != "token":
        train = teacher_examples(Path(config.out), options, train, config.max_prompt, progress)
    train = [e for e in train if e.target]
    if not train:
        raise QfsumError("no training examples with a target (token level needs references)")
    rows = [encode(tokenizer, e, config.max_prompt, config.max_target) for e in train]
    pad = tokenizer.pad_token_id
    notes = {"teacher": options.teacher, "mode": options.mode}
    if options.mode == "sequence":
        loss = lambda m, b: sft_loss(m, b, pad)  # noqa: E731
    else:
        if _is_pipeline(options.teacher):
            raise QfsumError("token-level distillation needs a model as teacher, not a pipeline")
        from ...assets import load_generator, load_tokenizer

        if not same_tokenizer(load_tokenizer(options.teacher), tokenizer):
            raise QfsumError("token-level distillation needs teacher and student to share a tokenizer; use --mode sequence")
        teacher, _ = load_generator(options.teacher, "float32")
        notes.update(temperature=options.temperature, alpha=options.alpha)
        loss = lambda m, b: token_loss(m, teacher, b, pad, options)  # noqa: E731
    job = Job("distill", rows, loss, val, notes)
    return run_training(config, job, model, tokenizer, progress, command)
