"""Distillation of a teacher into the real-time writer.

- sequence level: the teacher (a causal LM, or a qfsum pipeline's writer) answers every training
  (query, passage) pair, labelled or not, with grounded decoding; its answers are cached one by one
  (`teacher.AnswerCache`: `teacher.jsonl` in the run folder, or a file kept across sessions), filtered
  by their faithfulness to the passage, and the student is fine-tuned on them as in SFT, with the
  references as further rows if asked (`with_references`);
- token level (teacher and student share a tokenizer): the loss mixes the label cross-entropy with
  the KL divergence between the teacher's and the student's next-token distributions on the
  answer tokens, both softened by a temperature T (Hinton et al., 2015):
  `(1 - alpha) * CE + alpha * T^2 * KL(p_teacher^T || p_student^T)`.

`mode="both"` trains on the teacher's answers with the token-level loss.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ...errors import QfsumError
from .sft import (
    Job,
    TrainConfig,
    load_trainable,
    resume_point,
    run_training,
    sft_loss,
    task_splits,
)
from .taskdata import IGNORE, collate, encode
from .teacher import is_pipeline, teacher_answers

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
    cache: str | None = None  # the teacher's answers (None: OUT/teacher.jsonl)
    min_faithfulness: float = 0.0  # teacher answers less faithful to their passage are not trained on
    with_references: bool = False  # train on the references too (one more row per labelled example)
    teacher_only: bool = False  # write the teacher's answers, then stop (no student is loaded)


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


def train_distill(config: TrainConfig, options: DistillOptions, progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Distil `options.teacher` into `config.base` (the student); resumable like SFT, the teacher's answers
    too (answer by answer). With `teacher_only`, stops once the teacher has answered every example."""
    if options.mode not in MODES:
        raise QfsumError(f"unknown distillation mode '{options.mode}' (choose from {', '.join(MODES)})")
    if options.temperature <= 0 or not 0 <= options.alpha <= 1:
        raise QfsumError("distillation needs temperature > 0 and 0 <= alpha <= 1")
    if not 0 <= options.min_faithfulness <= 1:
        raise QfsumError(f"--min-faithfulness must be in [0, 1], got {options.min_faithfulness}")
    if options.teacher_only:
        return _teacher_only(config, options, progress)
    previous, checkpoint = resume_point(config)
    if previous is not None and previous.get("status") == "done":
        return {**previous, "reported": True}
    model, tokenizer = load_trainable(config, checkpoint)
    train, val = task_splits(config, tokenizer, progress)
    notes: dict[str, Any] = {"teacher": options.teacher, "mode": options.mode}
    if options.mode != "token":
        references = [e for e in train if e.target] if options.with_references else []
        answered = teacher_answers(options.teacher, train, _cache_path(config, options), config.max_prompt,
                                   options.max_new_tokens, options.min_faithfulness, progress)
        notes.update(teacher_answers=len(answered.examples), dropped_empty=answered.empty,
                     dropped_unfaithful=answered.unfaithful, min_faithfulness=options.min_faithfulness,
                     reference_rows=len(references))
        train = answered.examples + references
    train = [e for e in train if e.target]
    if not train:
        raise QfsumError("no training examples with a target (token level needs references)")
    rows = [encode(tokenizer, e, config.max_prompt, config.max_target) for e in train]
    pad = tokenizer.pad_token_id
    if options.mode == "sequence":
        loss = lambda m, b: sft_loss(m, b, pad)  # noqa: E731
    else:
        if is_pipeline(options.teacher):
            raise QfsumError("token-level distillation needs a model as teacher, not a pipeline")
        from ...assets import load_generator, load_tokenizer

        if not same_tokenizer(load_tokenizer(options.teacher), tokenizer):
            raise QfsumError("token-level distillation needs teacher and student to share a tokenizer; use --mode sequence")
        teacher, _ = load_generator(options.teacher, "float32")
        notes.update(temperature=options.temperature, alpha=options.alpha)
        loss = lambda m, b: token_loss(m, teacher, b, pad, options)  # noqa: E731
    job = Job("distill", rows, loss, val, notes)
    return run_training(config, job, model, tokenizer, progress, command)


def _cache_path(config: TrainConfig, options: DistillOptions) -> Path:
    return Path(options.cache) if options.cache else Path(config.out) / TEACHER_FILE


def _teacher_only(config: TrainConfig, options: DistillOptions, progress: bool) -> dict[str, Any]:
    """Write (or finish writing) the teacher's answers to the training examples; no student is trained."""
    from ...assets import load_tokenizer

    if options.mode == "token":
        raise QfsumError("--teacher-only writes the teacher's answers: it needs --mode sequence or both")
    tokenizer = load_tokenizer(config.base)  # the student's: its passage budget
    train, _ = task_splits(replace(config, val_split=None), tokenizer, progress)
    answered = teacher_answers(options.teacher, train, _cache_path(config, options), config.max_prompt,
                               options.max_new_tokens, options.min_faithfulness, progress)
    return {"kind": "teacher", "examples": len(train), "written": answered.written, "kept": len(answered.examples),
            "dropped_empty": answered.empty, "dropped_unfaithful": answered.unfaithful,
            "cache": str(_cache_path(config, options))}
