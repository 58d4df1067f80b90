"""The HTML report of an evaluate run: self-contained, escaped, the metric table with intervals,
the breakdowns, the histogram and the worst examples; `qfsum report` rebuilds it."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import VAL_IDS, assert_one_error_line, cli, write_jsonl

from qfsum.evaluation.bootstrap import interval
from qfsum.evaluation.report import REPORT_FILE, tercile_groups, write_report
from qfsum.evaluation.runs import query_type

EVIL = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


class _Tags(HTMLParser):
    """Every start tag and attribute, and the text of each <h3> (the worst examples' titles)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.h3: list[str] = []
        self._in_h3 = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_h3 = tag == "h3"
        if self._in_h3:
            self.h3.append("")

    def handle_endtag(self, tag):
        if tag == "h3":
            self._in_h3 = False

    def handle_data(self, data):
        if self._in_h3:
            self.h3[-1] += data


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    return parser


def _write_run(folder: Path, data: Path, n: int = 12, old_rows: bool = False) -> list[dict]:
    """A run folder by hand: example i has rouge1 = 3 * i + 1, every third one general, documents
    of i + 1 sentences; with `old_rows`, rows as runs wrote them before the report (no spans, no
    lengths, no query type), the data in `data` to rebuild them from."""
    records, rows = [], []
    for i in range(n):
        sentences = [f"Sentence {k} of document {i} says the budget is {k * 10}." for k in range(i + 1)]
        kind = "g" if i % 3 == 0 else "s"
        records.append({"id": f"doc{i}-{kind}{i}", "query": f"What about {i}? {EVIL}", "segments": sentences,
                        "summary": f"Reference {i}: the budget. {EVIL}"})
        text = "\n".join(sentences)
        first = text.split("\n")[0]
        row = {"id": f"doc{i}-{kind}{i}", "query": records[-1]["query"], "prediction": f"Answer {i} {EVIL} " + "word " * i,
               "references": [records[-1]["summary"]], "evidence": [0], "seconds": 0.1,
               "rouge1": 3.0 * i + 1, "rouge2": 1.0 * i, "rougeL": 2.0 * i, "rougeLsum": 2.5 * i,
               "number_precision": None if i % 2 else 1.0 - i / 100, "name_precision": None,
               "number_precision_document": None, "name_precision_document": None,
               "supported_sentences": 0.5}
        if not old_rows:
            row |= {"query_type": "general" if kind == "g" else "specific", "document_words": len(text.split()),
                    "evidence_spans": [[0, len(first)]]}
        rows.append(row)
    write_jsonl(data, records)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "metrics.json").write_text(json.dumps({"rouge1": 0.0, "support_scorer": "lexical", "n": n}))
    run = {"pipeline": {"name": f"hand {EVIL}", "segmenter": {"kind": "turn"}}, "data": f"{data.resolve()}:None",
           "ids": [r["id"] for r in rows], "support_scorer": "lexical"}
    (folder / "run.json").write_text(json.dumps(run))
    return rows


def test_report_is_self_contained_and_escapes_every_text(tmp_path):
    _write_run(tmp_path / "run", tmp_path / "data.jsonl")
    path = write_report(tmp_path / "run")
    assert path == tmp_path / "run" / REPORT_FILE
    text = path.read_text()
    tags = _parse(text).tags
    assert not [t for t, _ in tags if t in ("script", "img", "link", "iframe")]  # the evil text stays text
    assert not [a for _, attrs in tags for a in attrs if a.startswith("on")]  # no event handlers
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)  # nothing from the network
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img" in text
    assert text.count("<svg") == 1 and "<style>" in text


def test_report_metric_table_has_bootstrap_intervals(tmp_path):
    rows = _write_run(tmp_path / "run", tmp_path / "data.jsonl")
    text = write_report(tmp_path / "run").read_text()
    r1 = interval([r["rouge1"] for r in rows])
    assert f"{r1.mean:.2f} <span class=\"ci\">[{r1.low:.2f}, {r1.high:.2f}]</span>" in text
    numbers = interval([r["number_precision"] for r in rows])  # defined for half the examples
    assert numbers.n == 6 and f"{numbers.mean:.3f} <span class=\"ci\">[{numbers.low:.3f}" in text
    assert "name_precision</code>" not in text  # defined nowhere: left out of the table


def test_report_breakdowns_by_query_type_and_document_length(tmp_path):
    rows = _write_run(tmp_path / "run", tmp_path / "data.jsonl")
    text = write_report(tmp_path / "run").read_text()
    general = [r for r in rows if r["query_type"] == "general"]
    mean_general = sum(r["rouge1"] for r in general) / len(general)
    assert re.search(rf"<td>general</td><td>{len(general)}</td><td>{mean_general:.2f} ", text)
    assert re.search(rf"<td>specific</td><td>{len(rows) - len(general)}</td>", text)
    # documents of 10 words per sentence, 1..12 sentences: terciles of 4 examples each
    assert re.search(r"<td>short \(10–40 words\)</td><td>4</td>", text)
    assert re.search(r"<td>long \(90–120 words\)</td><td>4</td>", text)


def test_report_worst_examples_are_the_lowest_rouge1_with_reference_and_evidence(tmp_path):
    rows = _write_run(tmp_path / "run", tmp_path / "data.jsonl")
    text = write_report(tmp_path / "run").read_text()
    titles = _parse(text).h3[-5:]
    worst = sorted(rows, key=lambda r: r["rouge1"])[:5]
    assert [t.split(":")[0] for t in titles] == [r["id"] for r in worst]
    assert "Sentence 0 of document 0 says the budget is 0." in text  # the evidence span's text
    assert "Reference 0: the budget." in text


def test_report_rebuilds_old_rows_from_the_runs_data(tmp_path, capsys):
    _write_run(tmp_path / "run", tmp_path / "data.jsonl", old_rows=True)
    code, out, err = cli(capsys, "report", tmp_path / "run")
    assert code == 0, err
    assert str(tmp_path / "run" / REPORT_FILE) in out
    text = (tmp_path / "run" / REPORT_FILE).read_text()
    assert "<td>general</td><td>4</td>" in text  # from the ids
    assert "words)</td><td>4</td>" in text  # lengths from the data
    assert "Sentence 0 of document 0 says" in text  # evidence from the segmenter and segment index 0
    # without the data, what needs it is said to be missing; the rest is still there
    (tmp_path / "data.jsonl").unlink()
    text = write_report(tmp_path / "run").read_text()
    assert "not available" in text and "By document length: not recorded" in text and "<svg" in text


def test_report_of_a_folder_that_is_not_a_run_is_a_user_error(tmp_path, capsys):
    code, _, err = cli(capsys, "report", tmp_path)
    assert "predictions.jsonl" in assert_one_error_line(code, err)


def test_tercile_groups_keep_ties_together():
    rows = [{"w": w} for w in (5, 1, 9, 3, 7, 2, 8, 4, 6)]
    groups = tercile_groups(rows, "w")
    assert [[r["w"] for r in g] for _, g in groups] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [name for name, _ in groups] == ["short (1–3 words)", "medium (4–6 words)", "long (7–9 words)"]
    tied = tercile_groups([{"w": 5}] * 4 + [{"w": 9}] * 2, "w")
    assert [(name, len(g)) for name, g in tied] == [("shorter (5–5 words)", 4), ("longer (9–9 words)", 2)]
    assert [name for name, _ in tercile_groups([{"w": 7}] * 5, "w")] == ["all (7–7 words)"]  # one meeting


def test_query_type_from_qmsum_ids():
    assert [query_type(i) for i in ("Bed002-g0", "TS3010c-s12", "doc1", "x-g", "a-s1-b")] == [
        "general", "specific", None, None, None]


def test_evaluate_writes_the_report_beside_metrics(capsys, qmsum_root, tmp_path):
    out = tmp_path / "run"
    code, printed, err = cli(capsys, "evaluate", "--data", qmsum_root, "--split", "val", "-p", "extractive-bm25",
                             "--out", out, "--no-progress")
    assert code == 0, err
    assert f"{out}/report.html" in printed
    text = (out / REPORT_FILE).read_text()
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [r["query_type"] for r in rows] == ["general", "specific", "specific", "general", "specific"]
    assert len(rows) == len(VAL_IDS)
    assert "<td>general</td><td>2</td>" in text and "<td>specific</td><td>3</td>" in text
    worst = min(rows, key=lambda r: (r["rouge1"], r["id"]))
    assert _parse(text).h3[-5].startswith(worst["id"])  # 5 examples: all shown, the worst first
    # the evidence in the report is the evidence the writer was given: spans of the document
    from qfsum.readers import read_examples

    document = {e.id: e for e in read_examples(qmsum_root, "val")}[worst["id"]].document.text
    assert worst["evidence_spans"]
    for a, b in worst["evidence_spans"]:
        assert html.escape(document[a:b]) in text
