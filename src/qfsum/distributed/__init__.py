"""Batch jobs: `qfsum batch` on Ray Data (or one process), resumable and exactly once."""
