"""Batch jobs: `qfsum batch` on Ray Data (or one process), resumable and exactly once."""

EXECUTORS = ("auto", "local", "ray")
RAY_MIN_CPUS = 8  # auto picks Ray from this many CPUs: on 2 cores a local Ray ran at 0.67x one process
