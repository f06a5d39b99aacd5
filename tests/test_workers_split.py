"""Chunks finer than a configuration: a big configuration is cut into ranges of its samples, so
that a one-configuration, CPU-bound sweep is shared by workers too (issue 18), and what needs the
whole configuration (the best configuration, the leaderboard) still sees every run of it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from test_workers import chunks, said, workers

import promptlooper as pl
from promptlooper.store.chunks import chunk_ranges

CRUNCH = """\
import hashlib


def crunch(text):
    # CPU-bound, as an embedded model or a heavy Python stage is: ~20 ms of hashing per run.
    h = text.encode()
    for _ in range(20000):
        h = hashlib.sha256(h).digest()
    return text.upper() + " " + h.hex()[: len(text) % 5]
"""


def test_a_configuration_bigger_than_a_chunk_is_cut_into_ranges_of_its_samples() -> None:
    # 1 configuration of 200 samples, repeat 1, chunks of 16 runs: 13 sample ranges.
    ranges = chunk_ranges(1, 200, 16, samples=200)
    assert ranges[0] == (0, 1, 0, 16, 16) and ranges[-1] == (0, 1, 192, 200, 8) and len(ranges) == 13
    # Repeats stay with their sample: 2 configurations of 10 samples × 3 repeats, chunks of 12 runs.
    assert chunk_ranges(2, 30, 12, samples=10) == [(0, 1, 0, 4, 12), (0, 1, 4, 8, 12), (0, 1, 8, 10, 6),
                                                    (1, 2, 0, 4, 12), (1, 2, 4, 8, 12), (1, 2, 8, 10, 6)]
    assert chunk_ranges(10, 3, 7, samples=3) == [(0, 3), (3, 6), (6, 9), (9, 10)]  # small ones stay whole


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        return str(tmp_path / "shared.db")
    return request.getfixturevalue("pg_url")


def test_a_one_configuration_cpu_bound_sweep_is_shared_by_two_workers(url: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "crunching.py").write_text(CRUNCH)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    sys.path.insert(0, str(tmp_path))
    try:
        exp = pl.Experiment.model_validate({
            "project": "tests", "name": "crunched", "samples": [{"text": f"sample {i:03d} " + "x" * (i % 7)} for i in range(200)],
            "stages": [{"kind": "function", "name": "crunch", "function": "crunching:crunch"}],
            "scorers": [{"name": "length", "max_words": 3}]})
        wb = pl.Workbench(url)
        with workers(url, 2) as procs:
            handle = wb.start(exp, workers=True)
            progress = handle.wait(120)
            told = said(procs)
    finally:
        sys.path.remove(str(tmp_path))
    assert progress.status == "completed" and progress.done == 200 and progress.failed == 0
    done = chunks(url, handle.sweep_id)
    assert len(done) > 2 and all(c["lo"] == 0 and c["hi"] == 1 for c in done)  # one configuration, many chunks
    assert {c["state"] for c in done} == {"done"} and {c["owner"] for c in done} == {"w0", "w1"}, told  # both did runs
    # What needs the whole configuration saw all of it: the leaderboard, and the sweep's best.
    [row] = wb.leaderboard(exp.key, as_frame=False)
    assert row["n"] == 200
    sweep = wb.store.sweep(handle.sweep_id)
    assert sweep["best_config_id"] == row["full_config_id"] and round(sweep["best_score"], 9) == round(row["score"], 9)
    # Announced as a one-process sweep announces it: the run that completed it, each scorer's mean.
    [best] = [e["payload"] for e in wb.events(exp.key, types=["new_best_found"])]
    assert best["n"] == 200 and best["config_id"] == row["full_config_id"]
    assert best["run_id"] in {r["id"] for r in wb.store.runs(wb.experiment(exp.key)["id"])}
    assert best["scores"] == {"length": round(row["length"], 6)} and best["score"] == round(row["score"], 6)
    wb.close()


def test_a_chunk_holding_a_part_of_a_configuration_leaves_ranking_it_to_the_store() -> None:
    # The last part to start reads the other parts' finished runs, so its own sums reach the whole
    # configuration; ranked there and by the store (in another summing order), one clean-clone CI
    # run got two new_best_found events for one configuration. A part ranks nothing; a chunk of
    # whole configurations (or one process) still does.
    from types import SimpleNamespace

    from promptlooper.engine.progress import Progress
    from promptlooper.engine.sweep import Sweep

    def completed(ranks: bool) -> list[str]:
        sweep = Sweep.__new__(Sweep)  # only the state _update_best reads
        events: list[str] = []
        sweep._config_stats, sweep._scorer_stats, sweep._expected_per_config = {"c": [1.5, 2.0]}, {}, 3
        sweep._ranks_configurations, sweep.progress = ranks, Progress(total=3)
        sweep.emit = lambda etype, payload, ts=None: events.append(etype)  # type: ignore[method-assign]
        record = SimpleNamespace(config_id="c", score=0.5, scores=[], id="r3")
        item = SimpleNamespace(config=SimpleNamespace(varied={}, as_record=dict))
        sweep._update_best(record, item)  # type: ignore[arg-type]
        return events

    assert completed(ranks=True) == ["new_best_found"]
    assert completed(ranks=False) == []
