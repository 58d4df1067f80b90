"""The command line end to end: summarize, evaluate (with resume), evaluate-extractor, pipelines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PLAIN_TEXT, VAL_IDS, assert_one_error_line, cli, run_subprocess, write_jsonl

from qfsum import Pipeline, PipelineConfig
from qfsum.writers import WriterConfig
from qfsum.retrieval import ScorerConfig

ROUGE = {"rouge1", "rouge2", "rougeL", "rougeLsum"}
EXTRACTOR_KEYS = {f"{s}_{m}" for s in ("top1", "top5", "top15", "topall") for m in ("rouge1", "rouge2", "rougeL", "words")}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_summary_json(data, source_text: str, queries: list[str]) -> None:
    assert isinstance(data, list) and [d["query"] for d in data] == queries
    for item in data:
        assert set(item) == {"query", "summary", "sentences", "evidence", "timings"}
        assert item["summary"].strip()
        for sentence in item["sentences"]:
            assert item["summary"][sentence["start"] : sentence["end"]] == sentence["text"]
            assert set(sentence) == {"text", "start", "end", "citations", "support", "supported", "quote"}
            assert all(0 <= c < len(item["evidence"]) for c in sentence["citations"])
        assert item["evidence"]
        for evidence in item["evidence"]:
            assert set(evidence) == {"segment", "score", "start", "end", "text"}
            assert source_text[evidence["start"] : evidence["end"]] == evidence["text"]
        starts = [e["start"] for e in item["evidence"]]
        assert starts == sorted(starts)
        assert set(item["timings"]) == {"segment_ms", "score_ms", "write_ms", "ground_ms", "total_ms"}
        assert all(v >= 0 for v in item["timings"].values())


@pytest.fixture(scope="module")
def saved_tiny_pipeline(tmp_path_factory, tiny_causal_dir) -> Path:
    """A saved pipeline directory: BM25 + the tiny random causal LM (copied into it)."""
    config = PipelineConfig(
        name="tiny-generative",
        scorer=ScorerConfig(kind="bm25"),
        writer=WriterConfig(kind="generative", model=str(tiny_causal_dir), input_tokens=128, max_new_tokens=6),
    )
    return Pipeline(config).save(tmp_path_factory.mktemp("pipelines") / "tiny")


# -- summarize ---------------------------------------------------------------------------------------


def test_summarize_text_output(capsys, text_path):
    code, out, err = cli(capsys, "summarize", text_path, "-q", "What happened to the bridge budget?", "-p", "extractive-bm25")
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "Q: What happened to the bridge budget?"
    assert lines[1].startswith("A: ") and "bridge was cut by ten percent" in out
    assert any(line.lstrip().startswith("[1] chars ") for line in lines)
    assert lines[-1].startswith("(") and lines[-1].endswith(" ms)")


def test_summarize_json_keys_and_offsets(capsys, text_path):
    queries = ["What happened to the bridge budget?", "When will the reading room close?"]
    code, out, err = cli(capsys, "summarize", text_path, "-q", queries[0], "-q", queries[1], "-p", "extractive-bm25", "--json")
    assert code == 0, err
    data = json.loads(out)
    _check_summary_json(data, text_path.read_text(), queries)
    assert "March" in data[1]["summary"]


def test_summarize_words_sets_the_answer_length(capsys, text_path):
    def words(n: int) -> int:
        code, out, err = cli(capsys, "summarize", text_path, "-q", "What happened to the bridge budget?",
                             "-p", "extractive-bm25", "--json", "--words", str(n))
        assert code == 0, err
        return len(json.loads(out)[0]["summary"].split())

    short, long = words(8), words(60)
    assert short <= 8 < long <= 60


def test_summarize_text_output_names_the_sentence_to_check(capsys, text_path):
    code, out, err = cli(capsys, "summarize", text_path, "-q", "What happened to the bridge budget?", "-p", "extractive-bm25")
    assert code == 0, err
    check = out.split("Check:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert check and all(line.strip().startswith("sentence ") and " <- [" in line for line in check)
    quoted = [line.split('"', 1)[1].rsplit('"', 1)[0] for line in check]
    assert any("bridge was cut by ten percent" in q for q in quoted)


def test_summarize_json_subprocess_console_script(text_path):
    result = run_subprocess("summarize", text_path, "--query", "Who presented the library report?", "--pipeline", "extractive-bm25", "--json")
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    data = json.loads(result.stdout)
    _check_summary_json(data, text_path.read_text(), ["Who presented the library report?"])
    assert "Dr. Smith presented the library report." in data[0]["summary"]


def test_summarize_stdin_subprocess_module():
    result = run_subprocess("summarize", "-", "-q", "bridge budget", "-p", "extractive-lead", "--json", stdin=PLAIN_TEXT.encode(), module=True)
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    _check_summary_json(data, PLAIN_TEXT, ["bridge budget"])
    assert data[0]["evidence"][0]["start"] == 0  # LEAD: the first paragraph is in


def test_summarize_qmsum_file_uses_its_queries(capsys, qmsum_root):
    path = qmsum_root / "val" / "meeting_b.json"
    code, out, err = cli(capsys, "summarize", path, "-p", "extractive-bm25", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [d["query"] for d in data] == [
        "Summarize the whole meeting.",
        "What did the group decide about voice recognition?",
        "Why was rubber chosen for the case?",
    ]
    assert "voice recognition" in data[1]["summary"]
    assert all("{" not in e["text"] for d in data for e in d["evidence"])


def test_summarize_jsonl_first_record(capsys, jsonl_path):
    code, out, err = cli(capsys, "summarize", jsonl_path, "-p", "extractive-bm25", "--json")
    assert code == 0, err
    (item,) = json.loads(out)
    assert item["query"] == "What happened to the bridge budget?"
    assert "cut by ten percent" in item["summary"]


def test_summarize_markdown(capsys, markdown_path):
    code, out, err = cli(capsys, "summarize", markdown_path, "-q", "steel prices", "-p", "extractive-bm25", "--json")
    assert code == 0, err
    _check_summary_json(json.loads(out), markdown_path.read_text(), ["steel prices"])


def test_summarize_with_a_saved_generative_pipeline(capsys, text_path, saved_tiny_pipeline):
    code, out, err = cli(capsys, "summarize", text_path, "-q", "bridge budget", "-p", saved_tiny_pipeline, "--json")
    assert code == 0, err
    _check_summary_json(json.loads(out), text_path.read_text(), ["bridge budget"])


def test_pipelines_command(capsys):
    code, out, err = cli(capsys, "pipelines")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["default", "extractive", "extractive-bm25", "extractive-dense", "extractive-lead", "quality"]
    assert "SmolLM2" in out


# -- evaluate ----------------------------------------------------------------------------------------


def test_evaluate_extractive_bm25_on_qmsum_val(capsys, qmsum_root, tmp_path):
    out_dir = tmp_path / "run"
    code, out, err = cli(capsys, "evaluate", "--data", qmsum_root, "--split", "val", "-p", "extractive-bm25", "--out", out_dir, "--no-progress")
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert ROUGE | {"n", "seconds"} <= set(metrics)
    assert metrics["n"] == len(VAL_IDS)
    rows = _lines(out_dir / "predictions.jsonl")
    assert [r["id"] for r in rows] == VAL_IDS
    for key in ROUGE:
        assert metrics[key] == pytest.approx(sum(r[key] for r in rows) / len(rows))
        assert 0 < metrics[key] <= 100
    assert {"id", "query", "prediction", "references", "evidence", "seconds"} <= set(rows[0])
    assert rows[1]["references"] == ["They dropped voice recognition because of the budget."]
    assert "extractive-bm25" in out and f"{out_dir}/metrics.json" in out


def test_evaluate_limit(capsys, qmsum_root, tmp_path):
    out_dir = tmp_path / "run"
    code, _, err = cli(capsys, "evaluate", "--data", qmsum_root, "--split", "val", "-p", "extractive-lead", "--limit", "2", "--out", out_dir, "--no-progress")
    assert code == 0, err
    assert json.loads((out_dir / "metrics.json").read_text())["n"] == 2
    assert [r["id"] for r in _lines(out_dir / "predictions.jsonl")] == VAL_IDS[:2]


def test_evaluate_jsonl_data(capsys, jsonl_path, tmp_path):
    out_dir = tmp_path / "run"
    code, _, err = cli(capsys, "evaluate", "--data", jsonl_path, "-p", "extractive-bm25", "--out", out_dir, "--no-progress")
    assert code == 0, err
    rows = _lines(out_dir / "predictions.jsonl")
    assert [r["id"] for r in rows] == ["doc1", "seg1", "seg2"]
    from qfsum.evaluation import rouge

    # two references: the score is the better one (here the second, the longer sentence)
    prediction = rows[1]["prediction"]
    assert rows[1]["references"] == ["In October.", "The pears were harvested in October."]
    assert rows[1]["rouge1"] == pytest.approx(rouge(prediction, ["The pears were harvested in October."])["rouge1"])
    assert rows[1]["rouge1"] > rouge(prediction, ["In October."])["rouge1"]


def test_evaluate_saved_generative_pipeline_subprocess(qmsum_root, tmp_path, saved_tiny_pipeline):
    out_dir = tmp_path / "gen"
    result = run_subprocess(
        "evaluate", "--data", qmsum_root, "--split", "val", "--pipeline", saved_tiny_pipeline,
        "--out", out_dir, "--limit", "3", "--no-progress",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert ROUGE | {"n", "seconds"} <= set(metrics)
    assert metrics["n"] == 3
    rows = _lines(out_dir / "predictions.jsonl")
    assert [r["id"] for r in rows] == VAL_IDS[:3]
    assert all(isinstance(r["prediction"], str) and r["prediction"] for r in rows)
    assert "tiny" in result.stdout.decode()


def test_evaluate_resume_after_losing_the_last_line(capsys, qmsum_root, tmp_path, saved_tiny_pipeline):
    out_dir = tmp_path / "resume"
    args = ["evaluate", "--data", qmsum_root, "--split", "val", "-p", saved_tiny_pipeline, "--out", out_dir, "--no-progress"]
    assert cli(capsys, *args)[0] == 0
    predictions = out_dir / "predictions.jsonl"
    first = _lines(predictions)
    lines = predictions.read_text().splitlines(keepends=True)
    predictions.write_text("".join(lines[:-1]))  # as if killed before the last write

    code, _, err = cli(capsys, *args)
    assert code == 0, err
    rows = _lines(predictions)
    assert sorted(r["id"] for r in rows) == sorted(VAL_IDS)  # every id exactly once
    assert len(rows) == len(VAL_IDS)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["resumed"] == len(VAL_IDS) - 1 and metrics["n"] == len(VAL_IDS)
    assert rows[-1]["prediction"] == first[-1]["prediction"]  # greedy: the same answer again

    # a third run has nothing to do
    assert cli(capsys, *args)[0] == 0
    assert len(_lines(predictions)) == len(VAL_IDS)
    assert json.loads((out_dir / "metrics.json").read_text())["resumed"] == len(VAL_IDS)


def test_evaluate_resume_after_a_torn_last_line(capsys, qmsum_root, tmp_path):
    out_dir = tmp_path / "torn"
    args = ["evaluate", "--data", qmsum_root, "--split", "val", "-p", "extractive-bm25", "--out", out_dir, "--no-progress"]
    assert cli(capsys, *args)[0] == 0
    predictions = out_dir / "predictions.jsonl"
    text = predictions.read_text()
    last = text.splitlines(keepends=True)[-1]
    predictions.write_text(text[: len(text) - len(last) // 2 - 1])  # half a line, no newline

    assert cli(capsys, *args)[0] == 0
    rows = []
    for line in predictions.read_text().splitlines():
        rows.append(json.loads(line))  # every line must be valid JSON
    assert sorted(r["id"] for r in rows) == sorted(VAL_IDS)


def test_evaluate_refuses_an_out_dir_of_another_run(capsys, qmsum_root, tmp_path):
    out_dir = tmp_path / "run"
    base = ["evaluate", "--data", qmsum_root, "--split", "val", "--out", out_dir, "--no-progress"]
    assert cli(capsys, *base, "-p", "extractive-bm25")[0] == 0
    code, _, err = cli(capsys, *base, "-p", "extractive-lead")
    line = assert_one_error_line(code, err)
    assert "different pipeline or data" in line
    code, _, err = cli(capsys, *base, "-p", "extractive-bm25", "--limit", "2")
    assert_one_error_line(code, err)


def test_evaluate_jsonl_without_summaries_is_a_user_error(capsys, tmp_path):
    data = write_jsonl(tmp_path / "nosum.jsonl", [{"id": "a", "query": "budget?", "document": "The budget was cut."}])
    code, _, err = cli(capsys, "evaluate", "--data", data, "-p", "extractive-bm25", "--out", tmp_path / "o", "--no-progress")
    assert_one_error_line(code, err)


def test_evaluate_extractor_jsonl_without_summaries_is_a_user_error(capsys, tmp_path):
    data = write_jsonl(tmp_path / "nosum.jsonl", [{"id": "a", "query": "budget?", "document": "The budget was cut."}])
    code, _, err = cli(capsys, "evaluate-extractor", "--data", data, "--scorer", "bm25", "--tokenizer", "words", "--out", tmp_path / "o", "--no-progress")
    assert_one_error_line(code, err)


def test_evaluate_out_is_an_existing_file(capsys, qmsum_root, tmp_path):
    out_file = tmp_path / "taken"
    out_file.write_text("x")
    code, _, err = cli(capsys, "evaluate", "--data", qmsum_root, "--split", "val", "-p", "extractive-bm25", "--out", out_file, "--no-progress")
    assert_one_error_line(code, err)


# -- evaluate-extractor --------------------------------------------------------------------------------


def test_evaluate_extractor_bm25_words(capsys, qmsum_root, tmp_path):
    out_dir = tmp_path / "ext"
    code, out, err = cli(
        capsys, "evaluate-extractor", "--data", qmsum_root, "--split", "val", "--scorer", "bm25",
        "--tokenizer", "words", "--budget", "20", "--out", out_dir, "--no-progress",
    )
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert EXTRACTOR_KEYS | {"span_precision", "span_recall", "n", "n_with_spans"} <= set(metrics)
    assert metrics["n"] == len(VAL_IDS) and metrics["n_with_spans"] == 3
    assert metrics["topall_words"] <= 20
    assert metrics["top1_words"] <= metrics["top5_words"] <= metrics["top15_words"]
    assert 0 < metrics["span_recall"] <= 100 and 0 < metrics["span_precision"] <= 100
    rows = _lines(out_dir / "per_example.jsonl")
    assert [r["id"] for r in rows] == VAL_IDS
    assert "turn precision" in out and "spans touched" in out


def test_evaluate_extractor_gold(capsys, qmsum_root, tmp_path):
    out_dir = tmp_path / "gold"
    code, _, err = cli(
        capsys, "evaluate-extractor", "--data", qmsum_root, "--split", "val", "--scorer", "gold",
        "--tokenizer", "words", "--out", out_dir, "--no-progress",
    )
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert EXTRACTOR_KEYS | {"span_precision", "span_recall", "n"} <= set(metrics)
    assert metrics["n"] == 3  # only the examples with gold spans
    assert metrics["span_precision"] == 100.0 and metrics["span_recall"] == 100.0
    rows = _lines(out_dir / "per_example.jsonl")
    assert [r["id"] for r in rows] == ["meeting_b-s0", "meeting_b-s1", "meeting_c-s0"]
    # meeting_b-s1's gold is turns 2 and 4 = 15 + 17 words
    assert rows[1]["topall_words"] == 32


def test_evaluate_extractor_windows_and_pipeline_scorer(capsys, qmsum_root, tmp_path):
    out_dir = tmp_path / "win"
    code, _, err = cli(
        capsys, "evaluate-extractor", "--data", qmsum_root, "--split", "val", "--scorer", "extractive-lead",
        "--segment", "8", "--tokenizer", "words", "--budget", "30", "--out", out_dir, "--no-progress",
    )
    assert code == 0, err
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["top1_words"] == 8  # one window of 8 words
    assert metrics["topall_words"] == 30


def test_evaluate_extractor_gold_without_spans(capsys, tmp_path):
    data = write_jsonl(tmp_path / "nospans.jsonl", [{"id": "a", "query": "q", "document": "Some text.", "summary": "s"}])
    code, _, err = cli(capsys, "evaluate-extractor", "--data", data, "--scorer", "gold", "--tokenizer", "words", "--out", tmp_path / "o")
    line = assert_one_error_line(code, err)
    assert "no example has gold spans" in line


@pytest.mark.parametrize(
    "args, folder",
    [
        (["evaluate", "-p", "extractive-lead", "--limit", "2"], "evaluate-extractive-lead-val-2"),
        (["evaluate", "-p", "extractive-lead"], "evaluate-extractive-lead-val"),
        (["evaluate-extractor", "--scorer", "bm25", "--tokenizer", "words"], "extractor-bm25-val"),
    ],
)
def test_evaluate_default_out_folder(capsys, qmsum_root, tmp_path, monkeypatch, args, folder):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, *args, "--data", qmsum_root, "--split", "val", "--no-progress")
    assert code == 0, err
    metrics = json.loads((tmp_path / "runs" / folder / "metrics.json").read_text())
    assert metrics["n"] == (2 if "--limit" in args else len(VAL_IDS))


def test_evaluate_duplicate_ids_are_rejected_or_scored_separately(capsys, tmp_path):
    document = "The bridge was closed for repairs all winter long.\n\nThe park was opened."
    data = write_jsonl(
        tmp_path / "dup.jsonl",
        [
            {"id": "doc1", "query": "What about the bridge?", "document": document, "summary": document.split("\n\n")[0]},
            {"id": "doc1", "query": "What about the park?", "document": document, "summary": "The park was opened."},
        ],
    )
    out_dir = tmp_path / "o"
    code, _, err = cli(capsys, "evaluate", "--data", data, "-p", "extractive-bm25", "--out", out_dir, "--no-progress")
    if code == 2:  # rejecting duplicate ids is fine
        assert "doc1" in assert_one_error_line(code, err)
        return
    assert code == 0, err
    rows = _lines(out_dir / "predictions.jsonl")
    assert [r["query"] for r in rows] == ["What about the bridge?", "What about the park?"]
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["rouge1"] == pytest.approx(sum(r["rouge1"] for r in rows) / 2)


# -- help that stays true ------------------------------------------------------------------------------


def _commands():
    from qfsum.cli import build_parser
    from qfsum.cli.help import leaf_parsers

    return list(leaf_parsers(build_parser()))


def test_every_option_of_every_command_has_help_text():
    import argparse

    missing = [
        f"qfsum {' '.join(path)} {action.option_strings[0] if action.option_strings else action.dest}"
        for path, parser in _commands()
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction) and not (action.help or "").strip()
    ]
    assert not missing, "options without help text: " + ", ".join(missing)


def test_every_command_help_shows_examples_that_parse():
    import shlex

    from qfsum.cli import build_parser

    parser = build_parser()
    for path, command in _commands():
        text = command.format_help()
        assert "example" in text.split("options:")[-1].lower(), f"qfsum {' '.join(path)} --help shows no example"
        examples = [line.strip() for line in text.split("example")[-1].splitlines() if "qfsum " in line]
        assert examples, path
        for example in examples:
            words = shlex.split(example, comments=True)
            words = words[words.index("qfsum") + 1 :]  # after VAR=value prefixes
            assert words[: len(path)] == list(path), example
            try:
                parser.parse_args(words)
            except SystemExit:
                pytest.fail(f"the example in 'qfsum {' '.join(path)} --help' does not parse: {example}")


def test_help_shows_defaults(capsys):
    code, out, _ = cli(capsys, "summarize", "--help")
    assert code == 0
    flat = " ".join(out.split())
    assert "(default: default)" in flat  # --pipeline
    assert "(default: auto)" in flat  # --threads
    assert "(default: None)" not in flat and "(default: False)" not in flat
    code, out, _ = cli(capsys, "serve", "--help")
    flat = " ".join(out.split())
    assert "(default: 8000)" in flat and "(default 16)" in flat and "(default 16) (default" not in flat


def test_version(capsys):
    from importlib.metadata import version

    code, out, err = cli(capsys, "--version")
    assert code == 0 and out.strip() == f"qfsum {version('qfsum')}"
