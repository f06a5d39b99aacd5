"""The data side of the views (issue 17): the tidy runs table and its export, the output matrix,
group by any variable, comparing experiments (forks, configurations of two experiments), and the
sweep-analysis figures, on real sweeps (on the in-process fake model) and through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest

import promptlooper as pl
from promptlooper.testing import FakeModel

pytestmark = pytest.mark.both_backends  # the shared sweeps in a SQLite file and in PostgreSQL (new_store)

CLI = [sys.executable, "-m", "promptlooper.cli"]
CAPITALS = {"France": "paris", "Japan": "tokyo", "Italy": "rome"}


def _reply(body: dict[str, Any]) -> str:
    """Terse answers right; verbose answers are long, and wrong for Japan; Italy is the same for all."""
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    user = body["messages"][-1]["content"]
    country = next(c for c in CAPITALS if c in user)
    if country == "Italy":
        return "rome"
    if "terse" in system:
        return CAPITALS[country]
    hot = "warmly " if body.get("temperature", 0) > 0.2 else ""
    return f"well {hot}I would say it is {'osaka' if country == 'Japan' else 'paris'} of course"


def _experiment(base_url: str, name: str = "views", **over: Any) -> pl.Experiment:
    data: dict[str, Any] = {
        "project": "views", "name": name,
        "samples": [{"question": f"capital of {c}", "reference": r} for c, r in CAPITALS.items()],
        "stages": [{"name": "answer", "model": "fake/fake-small", "system": "{{ persona }}", "user": "Q: {{ question }}",
                    "params": {"max_tokens": 16}}],
        "space": {"answer.temperature": [0.0, 0.5], "persona": ["terse", "verbose"]},
        "scorers": [{"name": "contains", "field": "reference"}, {"name": "length", "max_words": 3}],
        "endpoints": {"fake": {"base_url": base_url, "prices": {"fake-small": [1.0, 2.0]}}},
        "concurrency": 8,
    }
    data.update(over)
    return pl.Experiment.model_validate(data)


@pytest.fixture(scope="module")
def swept(new_store):
    """One real sweep (2 temperatures x 2 personas x 3 samples), its workbench, fake model and database."""
    db = new_store("views")
    model = FakeModel(reply=_reply)
    wb = pl.Workbench(db)
    exp = _experiment(model.base_url)
    wb.run(exp)
    yield wb, exp, model, db
    wb.close()


def _cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a real process (exit codes, stdout / stderr as a shell sees them)."""
    return subprocess.run([*CLI, "--db", db, *args], capture_output=True, text=True, timeout=180)


def _main(db: str, *args: str) -> int:
    """The same command in this process (the machine is shared: each interpreter start costs seconds)."""
    from promptlooper.cli import main

    return main(["--db", db, *args])


# --------------------------------------------------------------------------- the data taken out
def test_runs_as_a_tidy_frame_with_clean_dtypes_that_parquet_takes(swept, tmp_path):
    wb, exp, _, _ = swept
    df = wb.runs(exp.key, as_frame=True)
    assert len(df) == 12 and df["run_id"].is_unique
    for col in ("answer.temperature", "persona", "score", "contains", "length", "tokens_in", "tokens_out", "tokens",
                "cost", "latency_ms", "status", "error", "output"):
        assert col in df.columns, col
    assert df["answer.temperature"].dtype == float and str(df["persona"].dtype) == "string"
    assert df["contains"].dtype == float and (df["cost"] > 0).all()
    assert set(df.loc[df.persona == "terse", "contains"]) == {1.0}
    path = tmp_path / "runs.parquet"
    df.to_parquet(path)
    back = pd.read_parquet(path)
    assert list(back.columns) == list(df.columns) and len(back) == 12
    # The list form every other caller uses is unchanged.
    assert isinstance(wb.runs(exp.key), list)


@pytest.fixture(scope="module")
def many(new_store):
    """A sweep of 60 runs (20 temperatures x 3 samples): past the list's default of 50 rows."""
    db = new_store("many")
    model = FakeModel(reply=_reply)
    wb = pl.Workbench(db)
    exp = _experiment(model.base_url, name="many", space={"answer.temperature": {"min": 0.0, "max": 0.95, "step": 0.05},
                                                         "persona": ["terse"]})
    wb.run(exp)
    wb.close()
    return db, exp


def test_cli_runs_exports_every_run_in_each_format(many, tmp_path):
    db, exp = many
    out = tmp_path / "runs.parquet"
    res = _cli(db, "runs", exp.key, "--format", "parquet", "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "60 runs" in res.stderr
    readers = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}
    for fmt, read in readers.items():
        path = tmp_path / f"runs.{fmt}"
        if fmt != "parquet":
            assert _main(db, "runs", exp.key, "--format", fmt, "-o", str(path)) == 0
        df = read(path)
        assert len(df) == 60 and {"answer.temperature", "persona", "score", "cost", "status"} <= set(df.columns), fmt
    assert len(json.loads(_cli(db, "runs", exp.key, "--json").stdout)) == 60  # --json: every run too


def test_cli_runs_to_stdout_and_clear_errors(many, tmp_path):
    db, exp = many
    res = _cli(db, "runs", exp.key, "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert len([json.loads(line) for line in res.stdout.splitlines()]) == 60
    res = _cli(db, "runs", exp.key, "--format", "parquet")
    assert res.returncode == 1 and "-o FILE" in res.stderr  # binary never goes to a terminal
    assert _main(db, "runs", exp.key, "--format", "csv", "-o", str(tmp_path / "missing" / "x.csv")) == 2


# --------------------------------------------------------------------------- the output matrix
def test_matrix_samples_by_configurations_with_scores_and_pass_fail(swept):
    wb, exp, _, _ = swept
    m = wb.matrix(exp.key)
    assert m.outputs.shape == (3, 4) and m.scores.shape == (3, 4) and len(m.cells) == 12
    assert m.scorers == ["contains", "length"]
    italy = m.cells[m.cells.output == "rome"]
    assert len(italy) == 4 and italy["passed:contains"].all() and italy["passed:length"].all()
    wrong = m.cells[m.cells.output.str.contains("osaka")]
    assert len(wrong) == 2 and set(wrong.failed_scorers) == {"contains length"} and not wrong["passed:contains"].any()
    verbose_paris = m.cells[m.cells.output.str.contains("paris") & (m.cells.output != "paris")]
    assert verbose_paris["passed:contains"].all() and not verbose_paris["passed:length"].any()
    # Across the values of a variable instead: two columns, each holding both temperatures' runs.
    by_persona = wb.matrix(exp.key, by="persona")
    assert by_persona.columns == ["terse", "verbose"] and by_persona.outputs.shape == (3, 2)
    assert by_persona.cells.groupby("column").size().to_dict() == {"terse": 6, "verbose": 6}


def test_matrix_filters(swept):
    wb, exp, _, _ = swept
    questions = {"France": None, "Japan": None, "Italy": None}
    all_cells = wb.matrix(exp.key).cells
    for country in questions:
        questions[country] = all_cells[all_cells.sample_index == list(CAPITALS).index(country)].sample_id.iloc[0]
    differ = wb.matrix(exp.key, differ=True)
    assert set(differ.samples) == {questions["France"], questions["Japan"]}  # Italy is "rome" everywhere
    failing = wb.matrix(exp.key, failures=True)
    assert set(failing.samples) == {questions["France"], questions["Japan"]}  # verbose answers are too long
    terse = wb.matrix(exp.key, where={"persona": "terse"})
    assert len(terse.cells) == 6 and set(terse.cells.output) == {"paris", "tokyo", "rome"}
    cold = wb.matrix(exp.key, where={"answer.temperature": [0.0], "persona": ["verbose"]})
    assert len(cold.cells) == 3
    low = wb.matrix(exp.key, score=(0.0, 0.4))
    assert len(low.cells) and (low.cells.score <= 0.4).all() and not low.cells.output.isin(["rome"]).any()
    warm = wb.matrix(exp.key, search="WARMLY")  # in outputs, case-insensitive
    assert len(warm.cells) == 2 and warm.cells.output.str.contains("warmly").all()
    japan = wb.matrix(exp.key, search="capital of japan")  # in the prompts sent
    assert set(japan.samples) == {questions["Japan"]} and len(japan.cells) == 4
    assert len(wb.matrix(exp.key, search="no such text anywhere").cells) == 0


def test_matrix_bad_filters_say_what_to_use(swept):
    wb, exp, _, _ = swept
    with pytest.raises(pl.errors.NotFoundError, match="persona"):
        wb.matrix(exp.key, by="personality")
    with pytest.raises(pl.errors.NotFoundError, match="not a varied parameter"):
        wb.matrix(exp.key, where={"temperature": 0.5})
    with pytest.raises(ValueError, match="low <= high"):
        wb.matrix(exp.key, score=(0.9, 0.1))


# --------------------------------------------------------------------------- group by any variable
def test_group_by_one_variable_and_a_pair(swept):
    wb, exp, _, _ = swept
    runs = wb.runs(exp.key, as_frame=True)
    g = wb.group_by(exp.key, "persona")
    assert list(g.persona) == ["terse", "verbose"] and list(g.n) == [6, 6]
    terse = runs[runs.persona == "terse"].score
    assert g.loc[0, "mean"] == pytest.approx(terse.mean())
    half = 2.5705818356363155 * terse.std(ddof=1) / 6 ** 0.5  # scipy.stats.t.ppf(0.975, 5)
    assert g.loc[0, "ci_low"] == pytest.approx(max(0.0, terse.mean() - half))
    assert g.loc[0, "ci_high"] == pytest.approx(min(1.0, terse.mean() + half))
    pair = wb.group_by(exp.key, ["persona", "answer.temperature"])
    assert len(pair) == 4 and set(pair.n) == {3} and {"configurations", "samples"} <= set(pair.columns)
    from promptlooper.grouping import pivot

    table = pivot(pair)
    assert table.shape == (2, 2) and table.loc["terse", 0.0] == pytest.approx(1.0)
    cost = wb.group_by(exp.key, "persona", metric="cost")
    assert (cost["mean"] > 0).all()
    with pytest.raises(pl.errors.NotFoundError, match="persona"):
        wb.group_by(exp.key, "nope")
    with pytest.raises(pl.errors.NotFoundError, match="contains"):
        wb.group_by(exp.key, "persona", metric="accuracy")


def test_cli_group(swept):
    _, exp, _, db = swept
    res = _cli(db, "group", exp.key, "persona", "answer.temperature", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert len(rows) == 4 and {"persona", "answer.temperature", "n", "mean", "ci_low", "ci_high"} <= set(rows[0])
    assert _main(db, "group", exp.key, "colour") == 1


# --------------------------------------------------------------------------- comparing experiments
@pytest.fixture(scope="module")
def forked(swept):
    """The sweep, a fork of it (verbose persona at two new temperatures) run, and a second
    experiment on two of the three samples."""
    wb, exp, model, db = swept
    fork = wb.fork(exp.key, changes={"persona": ["terse", "verbose"], "answer.temperature": [0.0, 0.9]}, name="views-fork")
    wb.run(fork)
    other = _experiment(model.base_url, name="other", space={"persona": ["verbose", "terse"]},
                        samples=[{"question": f"capital of {c}", "reference": CAPITALS[c]} for c in ("Japan", "France")])
    wb.run(other)
    return wb, exp, fork, other, db


def test_forks_are_listed_and_linked(forked):
    wb, exp, fork, other, _ = forked
    assert [f"{f['project']}/{f['name']}" for f in wb.forks(exp.key)] == [fork.key]
    assert wb.status(exp.key)["forks"] == [fork.key] and wb.status(exp.key)["parent"] is None
    assert wb.status(fork.key)["parent"] == exp.key and wb.status(fork.key)["forks"] == []
    assert wb.forks(other.key) == []


def test_compare_experiments_side_by_side_over_shared_samples(forked):
    wb, exp, fork, other, _ = forked
    board = wb.compare_experiments(exp.key, fork.key)
    assert board.attrs["shared_samples"] == 3 and board.attrs["only_a"] == board.attrs["only_b"] == 0
    assert set(board.experiment) == {exp.key, fork.key}
    parent_rows, fork_rows = board[board.experiment == exp.key], board[board.experiment == fork.key]
    assert len(parent_rows) == 4 and len(fork_rows) == 4 and list(parent_rows["rank"]) == [1, 2, 3, 4]
    # The fork re-ran two of the parent's configurations (same hash): marked on both sides, same score.
    both = fork_rows[fork_rows.in_both]
    assert len(both) == 2
    for _, row in both.iterrows():
        twin = parent_rows[parent_rows.full_config_id == row.full_config_id].iloc[0]
        assert twin.score == pytest.approx(row.score) and twin.in_both
    # Over two experiments sharing two of three samples, only those two count.
    partial = wb.compare_experiments(exp.key, other.key)
    assert partial.attrs["shared_samples"] == 2 and partial.attrs["only_a"] == 1 and partial.attrs["only_b"] == 0
    assert set(partial.n) == {2}
    from promptlooper.comparing import side_by_side

    wide = side_by_side(partial)
    assert list(wide.columns.get_level_values(0).unique()) == [exp.key, other.key]


def test_paired_comparison_of_configurations_from_two_experiments(forked):
    wb, exp, _, other, _ = forked
    out = wb.compare_across(f"{exp.key}:best", f"{other.key}:2")
    assert out["experiment_a"] == exp.key and out["experiment_b"] == other.key
    assert out["n"] == 2 and out["only_a"] == 1 and out["only_b"] == 0
    runs_a, runs_b = wb.runs(exp.key, as_frame=True), wb.runs(other.key, as_frame=True)
    a = runs_a[runs_a.config_id == out["config_a"]].set_index("sample_id").score
    b = runs_b[runs_b.config_id == out["config_b"]].set_index("sample_id").score
    shared = sorted(set(a.index) & set(b.index))
    assert out["mean_diff"] == pytest.approx((a[shared] - b[shared]).mean())
    with pytest.raises(pl.errors.NotFoundError, match="EXPERIMENT:CONFIG"):
        wb.compare_across("best", f"{other.key}:1")


def test_cli_compare_accepts_a_configuration_of_another_experiment(forked):
    _, exp, _, other, db = forked
    res = _cli(db, "compare", f"{exp.key}:best", f"{other.key}:1", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["experiment_a"] == exp.key and out["experiment_b"] == other.key and out["n"] == 2


def test_cli_compare_forms_and_compare_experiments(forked, capsys):
    _, exp, _, other, db = forked
    assert _main(db, "compare", exp.key, "best", f"{other.key}:1") == 0  # the three-argument form, B elsewhere
    out = capsys.readouterr().out
    assert f"B {other.key}:" in out and "over n=2 shared samples" in out
    assert _main(db, "compare", f"{exp.key}:best", "1") == 1
    assert "EXPERIMENT:CONFIG" in capsys.readouterr().err
    assert _main(db, "compare", exp.key, "1", "2") == 0
    assert "over n=3 shared samples" in capsys.readouterr().out
    assert _main(db, "compare-experiments", exp.key, other.key) == 0
    out = capsys.readouterr().out
    assert "over 2 shared samples" in out and other.key in out


# --------------------------------------------------------------------------- sweep analysis
def test_sweep_analysis_configurations_best_so_far_and_importance(swept):
    wb, exp, _, _ = swept
    data = wb.sweep_analysis(exp.key)
    configs, imp = data["configurations"], data["importance"]
    assert len(configs) == 4 and list(configs["order"]) == [1, 2, 3, 4]
    assert configs["best_so_far"].is_monotonic_increasing
    assert configs["best_so_far"].iloc[-1] == pytest.approx(configs["score"].max())
    assert (configs["cost"] > 0).all() and set(configs["n"]) == {3}
    # Only the persona decides the score here (terse 1.0, verbose low at both temperatures).
    assert list(imp["parameter"])[0] == "persona" and imp["importance"].sum() == pytest.approx(1.0)
    assert imp.set_index("parameter").loc["persona", "importance"] > 0.8
    from promptlooper.analysis import default_evaluator

    assert imp.attrs["evaluator"] == default_evaluator() == "mean_decrease_impurity"  # the analysis extra
    for evaluator in ("ped_anova", "fanova"):
        assert wb.sweep_analysis(exp.key, evaluator=evaluator)["importance"]["parameter"].iloc[0] == "persona"
    with pytest.raises(ValueError, match="fanova"):
        wb.sweep_analysis(exp.key, evaluator="gini")


def test_sweep_plots_are_plotly_figures_of_the_real_data(swept):
    wb, exp, _, _ = swept
    figs = wb.sweep_plots(exp.key)
    assert set(figs) == {"history", "importance", "parallel", "contour", "slices", "cost"}
    history = figs["history"]
    assert [t.name for t in history.data] == ["configuration", "best so far"] and len(history.data[0].y) == 4
    assert list(figs["importance"].data[0].y)[-1] == "persona"  # most important on top
    dims = {d.label: d for d in figs["parallel"].data[0].dimensions}
    assert set(dims) == {"answer.temperature", "persona", "score"} and list(dims["persona"].ticktext) == ["terse", "verbose"]
    heat = figs["contour"].data[0]
    assert list(heat.x) == ["0.0", "0.5"] and list(heat.y) == ["terse", "verbose"]
    assert heat.z[0][0] == pytest.approx(1.0)  # terse at 0.0: every answer right and short
    assert len(figs["slices"].data) == 2
    cost = figs["cost"]
    assert cost.layout.xaxis.tickprefix == "$" and "USD" in cost.layout.xaxis.title.text
    assert cost.layout.xaxis.tickformat.endswith("~f")  # decimals, never an SI prefix such as $20µ
    front = cost.data[1]
    assert front.name == "Pareto front" and max(front.y) == pytest.approx(1.0)


def test_views_read_the_current_definition_and_the_export_has_every_run(tmp_path):
    model = FakeModel(reply=_reply)
    wb = pl.Workbench(str(tmp_path / "defs.db"))
    first = _experiment(model.base_url, name="defs")
    wb.run(first)
    # The same experiment redefined: one sample dropped, one persona only.
    second = _experiment(model.base_url, name="defs", space={"answer.temperature": [0.0, 0.5], "persona": ["terse"]},
                         samples=[{"question": f"capital of {c}", "reference": CAPITALS[c]} for c in ("France", "Japan")])
    wb.run(second)
    runs = wb.runs(second.key, as_frame=True)
    assert len(runs) == 12 and int(runs["current"].sum()) == 4
    g = wb.group_by(second.key, "persona")
    assert list(g.persona) == ["terse"] and list(g.n) == [4]
    assert len(wb.matrix(second.key).cells) == 4
    analysis = wb.sweep_analysis(second.key)  # both score 1.0: nothing to attribute, no error
    assert len(analysis["configurations"]) == 2 and list(analysis["importance"].importance) == [0.0]
    board = wb.leaderboard(second.key)
    assert set(board.n) == {2} and len(board) == 2  # the same runs as the views
    wb.close()
