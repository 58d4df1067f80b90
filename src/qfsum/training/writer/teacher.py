"""A teacher's answers for distillation: written with grounded decoding, cached answer by answer, filtered.

The teacher is a pipeline (packaged name or folder: its writer's config is used, runtime and grounding
included) or a causal LM (name, directory, hub id or adapter: written with grounded numbers and names).
Either writes from exactly the passage the student trains on: the passage is its one piece of
evidence, under the writer's input budget.

The cache is a JSONL file, one line per answer, appended and flushed as each answer is written, so a
run stopped at any point (a closed laptop, a session's end) loses at most the answer in progress and
the same command resumes where it stopped, across sessions too when the file is kept (`--teacher-cache`).
A line is keyed by a hash of the teacher, its answer length and the example's query and passage: a
changed passage (new evidence) or another teacher is answered again, never served a stale answer.

Filtering: an answer whose faithfulness against its passage (`dpo.answer_faithfulness`: the mean of
supported-sentence share and number and name precision) is under `min_faithfulness` is not trained on.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ...errors import QfsumError
from .dpo import answer_faithfulness
from .taskdata import TaskExample


def is_pipeline(name: str) -> bool:
    """True when `name` is a packaged pipeline or a pipeline folder (else: a model)."""
    from ...pipeline import CONFIG_FILE, packaged_pipelines

    return name in packaged_pipelines() or (Path(name) / CONFIG_FILE).is_file()


def answer_key(teacher: str, max_new_tokens: int, example: TaskExample) -> str:
    """What identifies a cached answer: the teacher, its length, and the example's query and passage."""
    text = json.dumps([teacher, max_new_tokens, example.query, example.passage], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


class AnswerCache:
    """An append-only JSONL file of teacher answers (`key`, `id`, `answer`), read back on resume."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.answers: dict[str, str] = dict(self._read())

    def _read(self) -> Iterator[tuple[str, str]]:
        if not self.path.is_file():
            return
        for line in self.path.read_text(encoding="utf-8").split("\n"):
            try:
                record = json.loads(line)
                yield record["key"], record["answer"]
            except (ValueError, KeyError, TypeError):  # the last line of a run stopped mid-write: answered again
                continue

    def add(self, key: str, example_id: str, answer: str) -> None:
        """Store one answer: on disk (flushed and synced) before the next is written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": key, "id": example_id, "answer": answer}, ensure_ascii=False)
        with self.path.open("a", encoding="utf-8") as handle:
            if handle.tell() and not self._ends_with_newline():
                handle.write("\n")  # a torn last line stays its own (unreadable) line
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.answers[key] = answer

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b"\n"


def teacher_writer(teacher: str, max_prompt: int, max_new_tokens: int) -> Any:
    """The writer that answers for `teacher`: a pipeline's own writer, or a causal LM's generative writer
    with grounded numbers and names; `max_new_tokens` long answers, the prompt within its budget."""
    from ...writers import WriterConfig, build_writer

    if is_pipeline(teacher):
        from ...pipeline import load_config

        config = load_config(teacher).writer
        if config.kind != "generative":
            raise QfsumError(f"the teacher pipeline '{teacher}' has a '{config.kind}' writer; distillation needs "
                             "a generative one")
        config.max_new_tokens = max_new_tokens
    else:
        config = WriterConfig(kind="generative", model=teacher, input_tokens=max_prompt, max_new_tokens=max_new_tokens,
                              grounded_numbers=True, grounded_names=True)
    return build_writer(config)


def answer_batch(writer: Any, examples: Sequence[TaskExample]) -> list[str]:
    """The writer's answer to each example's query from its passage alone (one piece of evidence),
    decoded together as the writer batches them (its runtimes give each the answer it would alone)."""
    from ...document import Evidence, Segment

    evidence = [[Evidence(Segment(0, e.passage, 0, len(e.passage)), 1.0)] for e in examples]
    return [draft.text for draft in writer.write_batch([e.query for e in examples], evidence)]


@dataclass
class TeacherAnswers:
    """Each example with the teacher's answer as target (the kept ones), and what was dropped."""

    examples: list[TaskExample]
    written: int  # answers written by this run (the rest came from the cache)
    empty: int  # answers with no text
    unfaithful: int  # answers under the faithfulness bar


def teacher_answers(teacher: str, examples: Sequence[TaskExample], cache_path: str | Path, max_prompt: int,
                    max_new_tokens: int, min_faithfulness: float = 0.0, progress: bool = True) -> TeacherAnswers:
    """The teacher's answer to every example, from the cache where it has one, written (and cached) where
    not; then filtered: empty answers and those under `min_faithfulness` are left out."""
    if not 0.0 <= min_faithfulness <= 1.0:
        raise QfsumError(f"the faithfulness bar must be in [0, 1], got {min_faithfulness}")
    cache = AnswerCache(cache_path)
    keys = [answer_key(teacher, max_new_tokens, e) for e in examples]
    missing = [(k, e) for k, e in zip(keys, examples, strict=True) if k not in cache.answers]
    if missing:
        writer = teacher_writer(teacher, max_prompt, max_new_tokens)
        size = max(1, writer.config.batch_size)  # the generative writer's own batch
        with tqdm(total=len(missing), desc=f"teacher ({len(examples) - len(missing)} cached)", unit="answer",
                  disable=not progress, smoothing=0.1) as bar:  # tqdm's rate and ETA cover this run's answers only
            for start in range(0, len(missing), size):  # a kill loses at most the batch being decoded
                batch = missing[start:start + size]
                for (key, example), answer in zip(batch, answer_batch(writer, [e for _, e in batch]), strict=True):
                    cache.add(key, example.id, answer)
                bar.update(len(batch))
    kept, empty, unfaithful = [], 0, 0
    for key, example in zip(keys, examples, strict=True):
        answer = cache.answers[key].strip()
        labelled = TaskExample(example.id, example.query, example.passage, answer)
        if not answer:
            empty += 1
        elif answer_faithfulness(answer, labelled) < min_faithfulness:
            unfaithful += 1
        else:
            kept.append(labelled)
    return TeacherAnswers(kept, len(missing), empty, unfaithful)
