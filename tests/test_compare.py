"""The bootstrap (qfsum.evaluation.bootstrap), `qfsum compare RUN_A RUN_B`, and the
benchmarks/paired_bootstrap.py wrapper the docs' commands still use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_error_line, cli

from qfsum.errors import QfsumError
from qfsum.evaluation.bootstrap import check_same_examples, interval, paired_differences, read_rows

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "paired_bootstrap.py"


def _rows(n: int, seed: int, shift: float = 0.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"id": f"m-s{i}", "query": f"q{i}", "references": [f"r{i}"],
             "rouge1": float(rng.uniform(10, 50)) + shift, "rougeLsum": float(rng.uniform(10, 40)) + shift,
             "supported_sentences": float(rng.uniform(0, 1)) if i % 4 else None, "seconds": 0.1}
            for i in range(n)]


def _run(folder: Path, rows: list[dict], name: str = "predictions.jsonl", metrics: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def _old_paired_bootstrap(a: dict, b: dict, metrics: list[str], draws: int = 10_000, seed: int = 0) -> list[tuple]:
    """benchmarks/paired_bootstrap.py as it was before the move, figure for figure."""
    rng = np.random.default_rng(seed)
    out = []
    for metric in metrics:
        ids = [i for i in a if i in b and a[i].get(metric) is not None and b[i].get(metric) is not None]
        diff = np.array([b[i][metric] - a[i][metric] for i in ids], dtype=np.float64)
        means = diff[rng.integers(0, len(diff), size=(draws, len(diff)))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        mean_a = np.mean([a[i][metric] for i in ids])
        out.append((metric, len(ids), mean_a, mean_a + diff.mean(), diff.mean(), low, high, np.mean(means <= 0)))
    return out


def test_paired_differences_reproduce_the_published_script():
    a = {r["id"]: r for r in _rows(60, seed=1)}
    b = {r["id"]: r for r in _rows(60, seed=2, shift=1.0)}
    metrics = ["rouge1", "supported_sentences", "rougeLsum"]
    new = paired_differences(a, b, metrics)
    old = _old_paired_bootstrap(a, b, metrics)
    assert [d.metric for d in new] == metrics
    for d, o in zip(new, old):
        assert (d.metric, d.n) == o[:2]
        assert [d.mean_a, d.mean_b, d.difference, d.low, d.high, d.p_not_better] == pytest.approx(list(o[2:]))
    assert new[1].n == 45  # every fourth example has no supported_sentences


def test_a_constant_improvement_has_a_point_interval():
    a = {r["id"]: r for r in _rows(30, seed=3)}
    b = {i: {**r, "rouge1": r["rouge1"] + 2.5} for i, r in a.items()}
    (d,) = paired_differences(a, b, ["rouge1"])
    assert d.difference == pytest.approx(2.5) and d.low == pytest.approx(2.5) and d.high == pytest.approx(2.5)
    assert d.p_not_better == 0.0
    (worse,) = paired_differences(b, a, ["rouge1"])
    assert worse.difference == pytest.approx(-2.5) and worse.p_not_better == 1.0


def test_interval_brackets_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small, large = rng.normal(5, 2, 20).tolist(), rng.normal(5, 2, 2000).tolist()
    few, many = interval(small), interval(large)
    assert few.low < few.mean < few.high and few.mean == pytest.approx(np.mean(small))
    assert many.high - many.low < (few.high - few.low) / 4  # width ~ 1/sqrt(n): 10x narrower
    assert interval([None, 3.0, None]) == pytest.approx(interval([3.0])) and interval([3.0]).n == 1
    assert interval([]) is None


def test_interval_in_slices_keeps_a_large_data_set_in_memory(monkeypatch):
    import qfsum.evaluation.bootstrap as bootstrap

    values = np.random.default_rng(1).uniform(0, 1, 500).tolist()
    whole = interval(values)
    monkeypatch.setattr(bootstrap, "CHUNK", 500 * 7)  # 7 draws per slice
    sliced = interval(values)
    assert sliced.mean == whole.mean
    assert sliced.low == pytest.approx(whole.low, abs=0.01) and sliced.high == pytest.approx(whole.high, abs=0.01)


def test_check_same_examples():
    a = {r["id"]: r for r in _rows(5, seed=0)}
    assert check_same_examples(a, {i: a[i] for i in list(a)[:3]}) == list(a)[:3]
    with pytest.raises(QfsumError, match="share no example"):
        check_same_examples(a, {"other": {"id": "other"}})
    changed = {i: dict(r) for i, r in a.items()}
    changed["m-s2"]["references"] = ["something else"]
    with pytest.raises(QfsumError, match="different references"):
        check_same_examples(a, changed)


def test_read_rows_errors_and_torn_last_line(tmp_path):
    with pytest.raises(QfsumError, match="no such"):
        read_rows(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QfsumError, match="not a run folder"):
        read_rows(tmp_path / "empty")
    run = _run(tmp_path / "r", _rows(3, seed=0))
    path = run / "predictions.jsonl"
    path.write_text(path.read_text() + '{"id": "m-s9", "rou')  # killed mid-write
    assert list(read_rows(run)) == ["m-s0", "m-s1", "m-s2"]
    path.write_text('[1, 2]\n' + path.read_text())
    with pytest.raises(QfsumError, match=":1: not a JSON object"):
        read_rows(run)


# -- qfsum compare ---------------------------------------------------------------------------------


def test_compare_prints_paired_differences(capsys, tmp_path):
    a_rows = _rows(40, seed=5)
    b_rows = [{**r, "rouge1": r["rouge1"] + 1.0} for r in a_rows]
    run_a = _run(tmp_path / "a", a_rows, metrics={"support_scorer": "lexical"})
    run_b = _run(tmp_path / "b", b_rows, metrics={"support_scorer": "lexical"})
    code, out, err = cli(capsys, "compare", run_a, run_b)
    assert code == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert lines["rouge1"][1] == "40" and lines["rouge1"][4] == "+1.00"
    assert "[+1.00, +1.00]" in out  # every example gained exactly 1
    assert lines["rougeLsum"][4] == "+0.00"
    assert lines["supported_sentences"][1] == "30"  # faithfulness: 3 decimals, defined examples only
    assert "40 shared examples" in out and "different support scorers" not in out


def test_compare_json_and_chosen_metrics(capsys, tmp_path):
    rows = _rows(20, seed=6)
    run_a, run_b = _run(tmp_path / "a", rows), _run(tmp_path / "b", _rows(20, seed=7))
    code, out, err = cli(capsys, "compare", run_a, run_b, "--metrics", "rougeLsum", "--json", "--draws", "500")
    assert code == 0, err
    (entry,) = json.loads(out)
    expected = paired_differences(read_rows(run_a), read_rows(run_b), ["rougeLsum"], draws=500)[0]
    assert entry["metric"] == "rougeLsum" and entry["difference"] == pytest.approx(expected.difference)
    assert entry["low"] == pytest.approx(expected.low) and entry["n"] == 20


def test_compare_notes_examples_only_one_run_has_and_different_support_scorers(capsys, tmp_path):
    rows = _rows(10, seed=8)
    run_a = _run(tmp_path / "a", rows, metrics={"support_scorer": "lexical"})
    run_b = _run(tmp_path / "b", rows[:7], metrics={"support_scorer": "some/nli-model"})
    code, out, err = cli(capsys, "compare", run_a, run_b)
    assert code == 0, err
    assert "7 shared examples (left out: 3 only in A, 0 only in B)" in out
    assert "different support scorers" in out


def test_compare_extractor_runs_default_to_extractor_metrics(capsys, tmp_path):
    rows = [{"id": f"e{i}", "top1_rouge1": 10.0 + i, "topall_rouge1": 20.0 + i, "span_recall": 50.0} for i in range(8)]
    run_a = _run(tmp_path / "a", rows, name="per_example.jsonl")
    run_b = _run(tmp_path / "b", [{**r, "top1_rouge1": r["top1_rouge1"] + 3} for r in rows], name="per_example.jsonl")
    code, out, err = cli(capsys, "compare", run_a, run_b)
    assert code == 0, err
    metrics = [line.split()[0] for line in out.splitlines()[4:]]  # after A, B, the count and the header
    assert metrics == ["top1_rouge1", "topall_rouge1", "span_recall"]


@pytest.mark.parametrize(
    "b_rows, extra, message",
    [
        ([{"id": "other", "rouge1": 1.0}], [], "share no example"),
        (None, ["--metrics", "rouge1,bleu"], "bleu"),
        ([{"id": "m-s0", "query": "another question", "rouge1": 1.0}], [], "different query"),
        (None, ["--draws", "5"], "--draws"),
        (None, ["--seed", "-1"], "--seed"),
    ],
)
def test_compare_errors_are_one_line(capsys, tmp_path, b_rows, extra, message):
    rows = _rows(5, seed=9)
    run_a = _run(tmp_path / "a", rows)
    run_b = _run(tmp_path / "b", b_rows if b_rows is not None else rows)
    code, _, err = cli(capsys, "compare", run_a, run_b, *extra)
    assert message in assert_one_error_line(code, err)


def test_compare_missing_run_is_a_user_error(capsys, tmp_path):
    code, _, err = cli(capsys, "compare", tmp_path / "nope", tmp_path / "nope2")
    assert "no such run" in assert_one_error_line(code, err)


def test_benchmark_wrapper_prints_the_same_table(tmp_path, capsys):
    run_a, run_b = _run(tmp_path / "a", _rows(25, seed=10)), _run(tmp_path / "b", _rows(25, seed=11))
    result = subprocess.run([sys.executable, str(SCRIPT), str(run_a), str(run_b), "--metrics", "rouge1,rougeLsum"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    code, out, _ = cli(capsys, "compare", run_a, run_b, "--metrics", "rouge1,rougeLsum")
    assert code == 0
    table = [line for line in out.splitlines() if line.startswith(("metric", "rouge"))]
    assert result.stdout.splitlines() == table
