"""The mutation check's snippets still point at the code they mutate.

`scripts/mutation_check.py` finds each deliberate bug's target by a code snippet. When a refactor
moves or rewrites that code, the snippet goes stale and the mutation would silently test nothing;
this test names the stale mutation so its snippet gets updated (see docs/testing.md). It runs only
the lookup, never the mutated test runs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "mutation_check.py"


def _script():
    spec = importlib.util.spec_from_file_location("mutation_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("mutation_check", module)
    spec.loader.exec_module(module)
    return module


mc = _script()


def test_enough_distinct_mutations_with_tests():
    ids = [m.id for m in mc.MUTATIONS]
    assert len(ids) >= 10 and len(set(ids)) == len(ids)
    for m in mc.MUTATIONS:
        assert m.what and m.tests, m.id
        for t in m.tests:
            assert (REPO / t.split("::")[0]).is_file(), f"{m.id}: test file {t} does not exist"


@pytest.mark.parametrize("mutation", mc.MUTATIONS, ids=lambda m: m.id)
def test_snippet_found_exactly_once_and_changes_the_code(mutation):
    target, problem = mc.locate(mutation, REPO / "src")
    assert target is not None, (f"mutation {mutation.id} ({mutation.what}): {problem} in src/emofuse; "
                                "update its snippet in scripts/mutation_check.py")
    original = target.read_text(encoding="utf-8")
    mutated = mc.mutated_text(mutation, target)
    assert mutated != original
    compile(mutated, str(target), "exec")  # the mutant is still valid Python: tests fail for the bug, not syntax


def test_a_moved_snippet_is_reported_stale(tmp_path):
    pkg = tmp_path / "src" / "emofuse" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\nx = 1\n")
    twice = mc.Mutation("t", "twice", "x = 1", "x = 2", ("tests/x.py",))
    missing = mc.Mutation("m", "missing", "y = 1", "y = 2", ("tests/x.py",))
    assert mc.locate(twice, tmp_path / "src") == (None, "stale: snippet found 2 times (emofuse/sub/a.py (2x))")
    assert mc.locate(missing, tmp_path / "src") == (None, "stale: snippet not found")
    res = mc.run_mutation(missing, tmp_path, timeout=5)
    assert res.status == "stale" and "not found" in res.detail
