"""One compiled experiment per start / plan / validate: validated once, samples read once,
scorers built once, endpoints and functions resolved once, and handed down to the engine.

Counted without patching anything: a scorer factory registered with ``@pl.scorer`` counts its
constructions, and an audit hook (``sys.addaudithook``, the interpreter's own record of every
``open``) counts the reads of the samples file.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

import promptlooper as pl
from promptlooper.compiled import CompiledExperiment, compile_experiment

BUILT: Counter[str] = Counter()
OPENED: Counter[str] = Counter()
_WATCHED: set[str] = set()


def _audit(event: str, args: tuple) -> None:
    reading = len(args) > 1 and isinstance(args[1], str) and "r" in args[1]
    if event == "open" and reading and isinstance(args[0], str | Path) and str(args[0]) in _WATCHED:
        OPENED[str(args[0])] += 1


sys.addaudithook(_audit)  # audit hooks stay for the process; this one only counts watched paths


@pl.scorer("counted_length", description="Short answers score 1 (counts its constructions, for tests).")
def counted_length(max_words: int = 6) -> pl.ScoreResult:
    BUILT["counted_length"] += 1

    def score(ctx: pl.ScoreContext) -> float:
        return 1.0 if len(ctx.output.split()) <= max_words else 0.0

    return score  # type: ignore[return-value]


@pytest.fixture
def counted(make_exp, tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("\n".join(json.dumps({"question": f"capital {i}", "reference": "x"}) for i in range(3)))
    _WATCHED.add(str(samples))
    BUILT.clear()
    OPENED.clear()
    exp = make_exp(samples=str(samples), scorers=[{"name": "counted_length", "max_words": 6}])
    yield exp, str(samples)
    _WATCHED.discard(str(samples))


def test_a_sweep_reads_its_samples_once_and_builds_each_scorer_once(wb, counted):
    exp, samples = counted
    progress = wb.run(exp)
    assert (progress.status, progress.done, progress.failed) == ("completed", 12, 0)
    assert (OPENED[samples], BUILT["counted_length"]) == (1, 1)


def test_plan_and_validate_each_compile_once(wb, counted):
    exp, samples = counted
    assert wb.validate(exp) == []
    assert (OPENED[samples], BUILT["counted_length"]) == (1, 1)
    info = wb.plan(exp)
    assert info["runs"] == 12
    assert (OPENED[samples], BUILT["counted_length"]) == (2, 2)  # plan compiled once more, no more


def test_the_compiled_experiment_holds_what_the_engine_needs(wb, counted):
    exp, _ = counted
    compiled = compile_experiment(exp, wb.pool(exp))
    assert isinstance(compiled, CompiledExperiment)
    assert len(compiled.samples) == 3 and len(compiled.configurations) == 4
    assert [s.spec.name for s in compiled.scorers] == ["counted_length"]
    assert compiled.functions == {}
    with pytest.raises(pl.SpecError):
        compile_experiment(exp.model_copy(update={"scorers": []}), wb.pool(exp))


def test_a_cli_run_validates_sizes_and_sweeps_one_compiled_experiment(db, counted, tmp_path, capsys):
    # `promptlooper run FILE` validates (every problem before any call), sizes the sweep (to ask
    # before a large one) and sweeps: one read of the samples file, one construction of each scorer.
    import yaml

    from promptlooper.cli import main

    exp, samples = counted
    data = exp.model_dump(mode="json", exclude_none=True, exclude={"base_dir"})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["--db", db, "run", str(path), "--quiet"]) == 0
    assert "completed: 12/12 runs" in capsys.readouterr().out
    assert (OPENED[samples], BUILT["counted_length"]) == (1, 1)
