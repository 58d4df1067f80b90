"""Thread settings: the default choice (pure), --threads validation, and what set_threads changes."""

from __future__ import annotations

import os

import pytest
from conftest import assert_one_error_line, cli

from qfsum import threads
from qfsum.errors import QfsumError

# -- the default choice ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "physical", "logical", "quota", "workers", "expected"),
    [
        (2, None, None, None, 1, 2),  # nothing known but the affinity mask
        (16, 8, 16, None, 1, 8),  # hyper-threads: one thread per core
        (16, 16, 16, None, 1, 16),  # no hyper-threading
        (4, 8, 16, None, 1, 2),  # a 4-CPU affinity mask on a hyper-threaded machine: 2 cores' worth
        (1, 8, 16, None, 1, 1),  # never below one
        (16, 8, 16, 2.0, 1, 2),  # a container's 2-CPU quota
        (16, 8, 16, 1.5, 1, 1),  # a fractional quota rounds down
        (16, 16, 16, 0.5, 1, 1),  # ... but never to zero
        (16, 16, 16, None, 4, 4),  # workers share the cores
        (8, 8, 8, None, 8, 1),  # one per worker when there are as many workers as cores
        (2, 2, 2, None, 8, 1),  # more workers than cores: still one each
        (8, None, None, None, 0, 8),  # a nonsensical worker count counts as one
    ],
)
def test_choose_threads(allowed, physical, logical, quota, workers, expected):
    assert threads.choose_threads(allowed, physical, logical, quota, workers) == expected


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("200000 100000\n", 2.0), ("150000 100000", 1.5), ("max 100000\n", None), ("", None), ("abc def", None),
     ("0 100000", None), ("100000", None)],
)
def test_parse_cgroup_cpu_max(text, cpus):
    assert threads.parse_cgroup_cpu_max(text) == cpus


def test_default_threads_is_within_this_machine():
    n = threads.default_threads()
    assert 1 <= n <= threads.allowed_cpus()
    assert threads.default_threads(workers=10_000) == 1


# -- parsing and setting --------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [("auto", None), ("AUTO", None), (None, None), ("1", 1), (" 4 ", 4)])
def test_parse_threads(value, expected):
    assert threads.parse_threads(value) == expected


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "", "٣", "99999999999999999999"])
def test_parse_threads_refuses(value):
    with pytest.raises(QfsumError, match="--threads must be"):
        threads.parse_threads(value)


def test_prepare_environment_keeps_the_users_choice():
    environ: dict[str, str] = {}
    threads.prepare_environment(environ)
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    environ = {"OMP_WAIT_POLICY": "ACTIVE"}
    threads.prepare_environment(environ)
    assert environ == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_set_threads_explicit_env_and_default(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        environ: dict[str, str] = {}
        assert threads.set_threads(3, environ=environ) == 3
        assert environ["OMP_NUM_THREADS"] == "3" and environ["MKL_NUM_THREADS"] == "3"
        assert torch.get_num_threads() == 3  # torch is loaded: changed now
        environ = {"OMP_NUM_THREADS": "2"}
        assert threads.set_threads(None, environ=environ) == 2  # the user's OMP_NUM_THREADS wins over the default
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(threads, "default_threads", lambda workers=1: 7 if workers == 1 else 1)
        environ = {"OMP_NUM_THREADS": "junk"}
        assert threads.set_threads(None, environ=environ) == 7
        assert threads.set_threads(None, workers=4, environ={}) == 1
    finally:
        torch.set_num_threads(before)


def test_cli_sets_the_wait_policy_before_anything_loads(capsys, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    code, out, err = cli(capsys, "pipelines")
    assert code == 0, err
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert cli(capsys, "pipelines")[0] == 0
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_summarize_threads_sets_torch_threads(capsys, text_path, monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))  # both restored after the test
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    try:
        code, out, err = cli(capsys, "summarize", text_path, "-q", "What happened to the bridge budget?",
                             "-p", "extractive-bm25", "--threads", "2")
        assert code == 0, err
        assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"
    finally:
        torch.set_num_threads(before)


# -- --threads on every command that runs models: one line, exit 2 -----------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_threads_flag_refuses_bad_values(capsys, value, text_path, qmsum_root, tmp_path):
    commands = [
        ["summarize", text_path, "-q", "budget?", "-p", "extractive-bm25"],
        ["evaluate", "--data", qmsum_root, "--split", "val", "-p", "extractive-bm25", "--out", tmp_path / "run"],
        ["serve", "--pipeline", "extractive-bm25", "--port", "0"],
        ["batch", "--input", tmp_path / "in.jsonl", "--output", tmp_path / "out.jsonl", "-p", "extractive-bm25"],
    ]
    for command in commands:
        code, out, err = cli(capsys, *command, "--threads", value)
        line = assert_one_error_line(code, err)
        assert "--threads must be" in line and repr(value) in line, (command, line)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_ray_actor_uses_one_thread_unless_asked(monkeypatch):
    torch = pytest.importorskip("torch")
    pytest.importorskip("ray")
    from qfsum.batch.ray_runner import SummarizeActor

    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))  # both restored after the test
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    try:
        SummarizeActor("extractive-bm25")
        assert torch.get_num_threads() == 1
        SummarizeActor("extractive-bm25", threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
