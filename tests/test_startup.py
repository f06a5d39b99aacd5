"""Start-up: the package resolves its names lazily, and a sweep and its printed leaderboard import
neither numpy, pandas nor scipy; the plain-Python arithmetic that replaced them gives their figures.

Timings live in benchmarks/startup.py, never here: these tests check what is imported and what is
computed, which no machine load can change.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import fake_experiment

import promptlooper as pl
from promptlooper import intervals, student_t

HEAVY = ("pandas", "numpy", "scipy", "pyarrow", "plotly", "optuna", "ipywidgets")
ROOT = Path(__file__).resolve().parent.parent


def imported_after(code: str, tmp_path: Path, watched: tuple[str, ...] = HEAVY) -> list[str]:
    """The ``watched`` (heavy) modules a fresh interpreter holds after running ``code``."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(code) + f"\nimport sys, json\nprint(json.dumps([m for m in {watched!r} if m in sys.modules]))\n")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_public_name_resolves():
    for name in pl.__all__:
        assert getattr(pl, name) is not None, name
        assert name in dir(pl)
    assert pl.Workbench.__module__ == "promptlooper.workbench" and pl.SpecError.__module__ == "promptlooper.errors"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pl.Nope  # noqa: B018
    from promptlooper import Experiment, scorer  # the from-import form goes through the same path

    assert Experiment is pl.Experiment and scorer is pl.scorer


def test_importing_the_package_imports_no_heavy_library(tmp_path):
    assert imported_after("import promptlooper", tmp_path) == []


def test_a_sweep_and_its_leaderboard_import_no_heavy_library(server, tmp_path):
    db = tmp_path / "existing.db"
    first = pl.Workbench(str(db))
    assert first.store.path == str(db)  # a database that exists (a new one: tests/store/test_migrating.py)
    first.close()
    exp = fake_experiment(server.base_url, name="light")
    (tmp_path / "exp.json").write_text(exp.model_dump_json())
    heavy = imported_after(f"""
        import promptlooper as pl
        wb = pl.Workbench({str(db)!r})
        exp = pl.Experiment.model_validate_json(open("exp.json").read())
        progress = wb.run(exp)
        assert progress.status == "completed" and progress.done == 12, progress
        rows = wb.leaderboard(exp.key, as_frame=False)
        assert len(rows) == 4 and rows[0]["rank"] == 1 and rows[0]["n"] == 3, rows
        wb.close()
    """, tmp_path)
    assert heavy == []


def test_a_cli_run_and_the_leaderboard_it_prints_import_no_heavy_library(server, tmp_path):
    db = tmp_path / "cli.db"
    first = pl.Workbench(str(db))
    assert first.store.path == str(db)
    first.close()
    exp = fake_experiment(server.base_url, name="cli-light")
    (tmp_path / "exp.json").write_text(exp.model_dump_json())  # JSON is YAML
    heavy = imported_after(f"""
        from promptlooper.cli import main
        assert main(["--db", {str(db)!r}, "run", "exp.json", "--quiet"]) == 0
    """, tmp_path, (*HEAVY, "xml.etree.ElementTree"))
    assert heavy == []  # and no XML library: that is for --junit only


# What only other commands use (steering, workers, guided search, asking, exports, housekeeping,
# notebook views): a sweep started from the command line imports none of it before or after its calls.
OTHER_COMMANDS = ("promptlooper.workers", "promptlooper.sweeps.guided", "promptlooper.asktell",
                  "promptlooper.cache_explain", "promptlooper.data_views", "promptlooper.export",
                  "promptlooper.steering", "promptlooper.housekeeping")


def test_a_cli_run_imports_nothing_only_other_commands_use(server, tmp_path):
    exp = fake_experiment(server.base_url, name="cli-lean")
    (tmp_path / "exp.json").write_text(exp.model_dump_json())
    loaded = imported_after(f"""
        from promptlooper.cli import main
        assert main(["--db", {str(tmp_path / "lean.db")!r}, "run", "exp.json", "--quiet"]) == 0
    """, tmp_path, OTHER_COMMANDS)
    assert loaded == []


def test_a_run_imports_python_dotenv_only_to_read_a_dotenv_file(server, tmp_path):
    exp = fake_experiment(server.base_url, name="dotenv")
    (tmp_path / "exp.json").write_text(exp.model_dump_json())
    run = (f"from promptlooper.cli import main\n"
           f"assert main(['--db', {str(tmp_path / 'env.db')!r}, 'run', 'exp.json', '--quiet']) == 0\n")
    assert imported_after(run, tmp_path, ("dotenv",)) == []  # every sweep looks for one: most find none
    (tmp_path / ".env").write_text("PL_FROM_DOTENV=yes\n")
    loaded = "import os\nassert os.environ.get('PL_FROM_DOTENV') == 'yes', 'the .env was not read'\n"
    assert imported_after(run + loaded, tmp_path, ("dotenv",)) == ["dotenv"]


def test_a_run_imports_jinja_only_for_a_template_that_needs_it(server, tmp_path):
    # "{{ persona }}" and "Q: {{ question }}": checked, read and rendered without Jinja (templates.py).
    exp = fake_experiment(server.base_url, name="plain-tags")
    (tmp_path / "exp.json").write_text(exp.model_dump_json())
    db = str(tmp_path / "tags.db")
    validate = f"from promptlooper.cli import main\nassert main(['--db', {db!r}, 'validate', 'exp.json']) == 0\n"
    run = f"from promptlooper.cli import main\nassert main(['--db', {db!r}, 'run', 'exp.json', '--quiet']) == 0\n"
    assert imported_after(validate, tmp_path, ("jinja2",)) == []
    assert imported_after(run, tmp_path, ("jinja2",)) == []
    stage = {**exp.stages[0].model_dump(), "user": "Q: {{ question | upper }}"}
    filtered = fake_experiment(server.base_url, name="a-filter", stages=[stage])
    (tmp_path / "exp.json").write_text(filtered.model_dump_json())
    assert imported_after(run, tmp_path, ("jinja2",)) == ["jinja2"]


def test_the_leaderboard_rows_are_the_frame_records(wb, server):
    exp = fake_experiment(server.base_url, name="rows", space={"answer.temperature": [0, 0.5], "persona": ["a", "b"]})
    wb.run(exp)
    frame = wb.leaderboard(exp.key)
    rows = wb.leaderboard(exp.key, as_frame=False)
    records = frame.to_dict(orient="records")
    assert len(rows) == len(records) == 4 and list(rows[0]) == list(frame.columns)
    for row, record in zip(rows, records, strict=True):
        for key, value in record.items():
            same = (isinstance(value, float) and math.isnan(value) and math.isnan(row[key])) or row[key] == value
            assert same and type(row[key]) is type(value), (key, row[key], value)
    assert isinstance(rows[0]["answer.temperature"], float)  # 0 and 0.5: a float column, as in pandas
    from promptlooper import ci

    for threshold in (0.0, 0.5, 1.01):  # --fail-under judges the printed rows as it judged the frame
        assert ci.check_fail_under(rows, threshold) == ci.check_fail_under(frame, threshold)


def test_the_leaderboard_frame_keeps_its_column_types_through_parquet(wb, server, tmp_path):
    exp = fake_experiment(server.base_url, name="types")
    wb.run(exp)
    frame = wb.leaderboard(exp.key)
    expected = {"rank": "int64", "score": "float64", "ci_low": "float64", "n": "int64", "tokens": "int64",
                "cost": "float64", "latency_ms": "float64", "failed": "int64", "missing": "int64"}
    assert {k: str(frame[k].dtype) for k in expected} == expected
    frame.to_parquet(tmp_path / "board.parquet")
    back = pd.read_parquet(tmp_path / "board.parquet")
    pd.testing.assert_frame_equal(back, frame)


# Values computed once with scipy 1.17.1: stats.t.ppf(q, df) and stats.t.sf(t, df).
T_PPF = [(0.975, 1, 12.706204736174694), (0.975, 2, 4.302652729749462), (0.975, 4, 2.7764451051977934),
         (0.975, 9, 2.262157162798205), (0.975, 29, 2.045229642132703), (0.975, 120, 1.9799304050824402),
         (0.995, 3, 5.840909309733355), (0.9, 7, 1.4149239276505086), (0.025, 5, -2.5705818356363155)]
T_SF = [(0.0, 5, 0.5), (1.0, 1, 0.25000000000000006), (2.0, 3, 0.06966298427942152),
        (4.47213595499958, 4, 0.005528246696725033), (10.0, 10, 7.947765877982062e-07),
        (-1.5, 8, 0.9139983540240444), (0.3, 200, 0.382244365094664)]


@pytest.mark.parametrize(("q", "df", "expected"), T_PPF)
def test_student_t_quantile_matches_scipy(q, df, expected):
    assert student_t.ppf(q, df) == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("t", "df", "expected"), T_SF)
def test_student_t_tail_matches_scipy(t, df, expected):
    assert student_t.sf(t, df) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert student_t.cdf(t, df) == pytest.approx(1 - expected, rel=1e-9, abs=1e-12)


def test_student_t_edges():
    assert math.isnan(student_t.sf(math.nan, 3)) and student_t.sf(math.inf, 3) == 0.0 and student_t.sf(-math.inf, 3) == 1.0
    assert student_t.ppf(0.0, 3) == -math.inf and student_t.ppf(1.0, 3) == math.inf and math.isnan(student_t.ppf(1.5, 3))
    assert student_t.ppf(0.5, 7) == pytest.approx(0.0, abs=1e-12)


def test_sums_and_spreads_equal_numpys_bit_for_bit():
    rng = np.random.default_rng(7)
    for n in (1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 300, 1000):
        values = (rng.random(n) * rng.choice([1e-3, 1.0, 1e3], n)).tolist()
        assert intervals.fsum_like_numpy(values) == float(np.sum(values))
        assert intervals.mean(values) == float(np.mean(values))
        if n > 1:
            assert intervals.std(values) == float(np.std(values, ddof=1))


def test_versus_best_in_plain_python():
    a, b, c = [0.5, 0.6, 0.7, 0.8, 0.9], [0.4, 0.4, 0.4, 0.7, 0.6], [0.54, 0.54, 0.75, 0.75, 0.88]
    rows = [{"config_id": cid, "sample_id": f"s{i}", "score": v}
            for cid, vals in (("a", a), ("b", b), ("c", c)) for i, v in enumerate(vals)]
    rows.append({"config_id": "d", "sample_id": "s0", "score": math.nan})  # nothing scored: never different
    assert intervals.versus_best(rows, "score", "a") == {"a": "best", "b": True, "c": False}
    assert intervals.versus_best(rows[:2], "score", "a") == {"a": "best"}  # 2 shared samples: too few

