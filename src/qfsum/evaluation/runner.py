"""The runners behind `qfsum evaluate` and `qfsum evaluate-extractor`.

Both write their outputs into one folder. `evaluate` appends each prediction to
`predictions.jsonl` as soon as it is made, so an interrupted run picks up where it stopped, and a
run with a larger `--limit` on the same folder only makes the predictions it lacks. It ends by
writing `metrics.json` and the HTML report (`report.html`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..budget import TokenCounter
from ..document import Example
from ..errors import QfsumError
from ..pipeline import Pipeline
from ..support import SupportScorer, build_support_scorer
from ..text import count_words
from .extractor import aggregate, example_metrics, gold_ranking
from .faithfulness import faithfulness, mean_defined
from .rouge import ROUGE_KEYS, mean_scores, rouge
from .runs import query_type

RUN_FILE = "run.json"


def _read_done(path: Path) -> dict[str, dict]:
    """Predictions already written by an earlier (interrupted) run.

    A last line torn by a kill mid-write is cut off the file, so new rows start on a clean line.
    """
    done: dict[str, dict] = {}
    if not path.exists():
        return done
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    if complete != text:
        path.write_text(complete)
    for line in complete.splitlines():
        row = json.loads(line)
        done[row["id"]] = row
    return done


def _check_examples(examples: Sequence[Example], out: Path) -> None:
    """Fail early on what would break a long run half-way: no examples, repeated ids, no references."""
    if not examples:
        raise QfsumError("no examples to evaluate")
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise QfsumError(f"example id '{example.id}' appears twice; ids must be unique")
        seen.add(example.id)
        if not example.references:
            raise QfsumError(f"example '{example.id}' has no reference summary ('summary' or 'summaries')")
    if out.exists() and not out.is_dir():
        raise QfsumError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)


def _check_same_run(out: Path, run: dict[str, Any]) -> None:
    """Refuse a folder that holds another pipeline's, data's or support scorer's results; accept
    the same run again (resume) or with more examples (a larger `--limit`: the first ones are kept)."""
    path = out / RUN_FILE
    if path.exists():
        previous = json.loads(path.read_text())
        if previous.get("pipeline") != run["pipeline"] or previous.get("data") != run["data"]:
            raise QfsumError(f"{out}: holds results of a different pipeline or data; pick another --out")
        scorer = previous.get("support_scorer", "lexical")  # runs from before the option: lexical
        if scorer != run["support_scorer"]:
            raise QfsumError(f"{out}: its sentences were judged by support scorer '{scorer}'; pass "
                             f"--support-scorer {scorer} or pick another --out")
        old, new = previous.get("ids", []), run["ids"]
        if new[: len(old)] != old:
            if old[: len(new)] == new:
                raise QfsumError(f"{out}: holds {len(old)} examples, more than the {len(new)} asked for; "
                                 "raise --limit or pick another --out")
            raise QfsumError(f"{out}: holds results of a different pipeline or data; pick another --out")
        if new == old:
            return
    tmp = path.with_suffix(".tmp")  # a kill mid-write must not leave half a run.json
    tmp.write_text(json.dumps(run, indent=2) + "\n")
    tmp.replace(path)


def evaluate(
    pipeline: Pipeline,
    examples: Sequence[Example],
    out: Path,
    data_label: str,
    progress: bool = True,
    support: SupportScorer | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Summarize every example, score it with ROUGE and the faithfulness metrics, and write
    predictions, metrics and (with `report`) the HTML report to `out`.

    `support` judges whether evidence supports each answer sentence (`supported_sentences`); None is
    the lexical scorer. Its name is recorded in `run.json` and `metrics.json`.
    """
    support = support or build_support_scorer("lexical")
    _check_examples(examples, out)
    _check_same_run(out, {"pipeline": pipeline.config.to_dict(), "data": data_label,
                          "ids": [e.id for e in examples], "support_scorer": support.name})
    predictions_path = out / "predictions.jsonl"
    done = _read_done(predictions_path)
    todo = [e for e in examples if e.id not in done]
    writer = pipeline.config.writer
    batch = max(writer.batch_size, 1) if writer.kind == "generative" else 16  # extractive: batching is free
    wall = time.perf_counter()
    with predictions_path.open("a") as sink, tqdm(
        total=len(examples), initial=len(examples) - len(todo), desc="evaluate", unit="ex", disable=not progress
    ) as bar:
        for i in range(0, len(todo), batch):
            chunk = todo[i : i + batch]
            start = time.perf_counter()
            summaries = pipeline.summarize_batch([(e.document, e.query) for e in chunk])
            seconds = (time.perf_counter() - start) / len(chunk)
            for example, summary in zip(chunk, summaries, strict=True):
                evidence = [e.segment for e in summary.evidence]
                row = {
                    "id": example.id,
                    "query": example.query,
                    "query_type": query_type(example.id),
                    "document_words": count_words(example.document.text),
                    "prediction": summary.text,
                    "references": example.references,
                    "evidence": [s.index for s in evidence],
                    "evidence_spans": [[s.start, s.end] for s in evidence],  # offsets into the document
                    "seconds": seconds,
                    "relevance": summary.relevance,  # the query's best cosine with a segment (dense scorers)
                    "note": summary.note,  # what grounding changed, or that the document seems off-topic
                    **rouge(summary.text, example.references),
                    **faithfulness(summary.text, [s.text for s in evidence], example.document.text, support),
                }
                done[example.id] = row
                sink.write(json.dumps(row) + "\n")
            sink.flush()
            bar.update(len(chunk))
    rows = [done[e.id] for e in examples]
    metrics = {
        **mean_scores([{k: r[k] for k in ROUGE_KEYS} for r in rows]),
        **mean_defined(rows),  # rows of runs from before the faithfulness metrics lack them: nan, n_* 0
        "support_scorer": support.name,  # what judged supported_sentences
        "n": len(rows),
        "seconds": sum(r["seconds"] for r in rows),
        "wall_seconds": time.perf_counter() - wall,
        "resumed": len(examples) - len(todo),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if report:
        from .report import write_report

        write_report(out, examples)
    return metrics


def evaluate_extractor(
    pipeline: Pipeline,
    examples: Sequence[Example],
    out: Path,
    counter: TokenCounter,
    budget: int = 1024,
    gold: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Extractor metrics of a pipeline's segmenter + scorer (or of the gold spans) on `examples`."""
    if gold:
        examples = [e for e in examples if e.spans]
        if not examples:
            raise QfsumError("no example has gold spans")
    _check_examples(examples, out)
    start = time.perf_counter()
    rows = []
    with (out / "per_example.jsonl").open("w") as sink:
        for example in tqdm(examples, desc="evaluate-extractor", unit="ex", disable=not progress):
            ranked = pipeline.rank(example.document, example.query)
            if gold:
                ranked = gold_ranking(example, ranked)
            row = example_metrics(example, ranked, budget, counter)
            rows.append(row)
            sink.write(json.dumps({"id": example.id, **row}) + "\n")
    metrics = {**aggregate(rows), "seconds": time.perf_counter() - start}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
