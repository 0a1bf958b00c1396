"""Shared test fixtures: where the real-output corpus lives, and its cases."""

from __future__ import annotations

import csv
import json
import os

import pytest

from dpconv.testing import fixtures_dir

FIXTURES = fixtures_dir()
DATA = os.path.join(os.path.dirname(__file__), "data")


def fixture_path(*parts: str) -> str:
    """Path of a file in the shared fixture corpus; skips the test when the corpus is absent."""
    path = os.path.join(FIXTURES, *parts)
    if not os.path.exists(path):
        pytest.skip(f"fixture corpus not found at {path} (set DPCONV_FIXTURES)")
    return path


def fixture_cases(prefixes: tuple[str, ...] = ()) -> list[dict]:
    """Rows of ``cases.tsv`` (case, fmt, path, kind, note, kwargs) whose fmt starts with a prefix."""
    tsv = os.path.join(FIXTURES, "cases.tsv")
    if not os.path.isfile(tsv):
        return []
    with open(tsv, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    out = []
    for r in rows:
        if prefixes and not r["fmt"].startswith(prefixes):
            continue
        r["kwargs"] = json.loads(r["kwargs"]) if r.get("kwargs") else {}
        out.append(r)
    return out
