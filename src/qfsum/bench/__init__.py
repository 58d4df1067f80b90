"""Benchmarks behind `qfsum bench`: they print figures and write them under docs/ (they are not tests)."""
