"""The exported winner is the whole configuration: every stage, its variables substituted, its score.

A three-stage pipeline (prompt → function → prompt) whose templates read space variables; the
export must let a user rebuild the winner without the store: each stage's model, endpoint,
parameters, raw templates and the texts with the configuration's variables filled in (sample
fields and earlier stage outputs stay placeholders), the variables, score, interval, n, failures
and approval. Exercised through the Python API and the CLI (a subprocess), in every format.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from helpers import fake_experiment

import promptlooper as pl
from promptlooper.functions import register_function

pytestmark = pytest.mark.both_backends  # each test on a SQLite file and on PostgreSQL (tests/conftest.py)

SECRET = "sk-live-EXPORT-WHOLE-42"


def tidy(draft: str, suffix: str) -> str:
    return draft.strip() + suffix


register_function("export_tidy", tidy)


def pipeline(base_url: str, name: str = "whole") -> pl.Experiment:
    return pl.Experiment.model_validate({
        "project": "tests", "name": name,
        "samples": [{"question": "capital of France"}, {"question": "capital of Japan"}],
        "stages": [
            {"name": "draft", "model": "fake/fake-small", "system": "You are {{ persona }}.",
             "user": "Q: {{ question }} ({{ style }})", "params": {"max_tokens": 8}},
            {"name": "tidy", "function": "export_tidy", "params": {"suffix": "!"}},
            {"name": "polish", "model": "fake/fake-large", "system": "Polish in a {{ tone }} tone.",
             "user": "Improve: {{ tidy }} for {{ question }}", "params": {"max_tokens": 6}},
        ],
        "space": {"persona": ["terse", "a verbose teacher"], "tone": ["dry"], "style": ["short"],
                  "draft.temperature": [0.0, 0.5]},
        "scorers": [{"name": "length", "max_words": 6}, {"name": "keyword", "words": ["alpha", "bravo"], "weight": 2}],
        "endpoints": {"fake": {"base_url": base_url, "api_key_env": "PL_WHOLE_KEY"}},
        "concurrency": 4,
    })


@pytest.fixture
def swept(db, monkeypatch):
    from promptlooper.testing import FakeServer

    monkeypatch.setenv("PL_WHOLE_KEY", SECRET)
    with FakeServer(api_key=SECRET) as srv:
        wb = pl.Workbench(db)
        exp = pipeline(srv.base_url)
        wb.run(exp)
        yield wb, exp, srv
        wb.close()


def _check_whole(record: dict, wb: pl.Workbench, exp: pl.Experiment, base_url: str) -> None:
    board = wb.leaderboard(exp.key).set_index("full_config_id")
    row = board.loc[record["config_id"]]
    persona = record["variables"]["persona"]
    assert record["variables"] == {"persona": persona, "tone": "dry", "style": "short"}
    assert [s["name"] for s in record["stages"]] == ["draft", "tidy", "polish"]
    draft, fn, polish = record["stages"]
    assert draft["model"] == "fake-small" and draft["endpoint"] == base_url
    assert draft["parameters"] == {"max_tokens": 8, "temperature": row["draft.temperature"]}
    assert draft["system_template"] == "You are {{ persona }}." and draft["system_prompt"] == f"You are {persona}."
    # Only the configuration's variables are filled in: a sample field cannot be exported.
    assert draft["user_template"] == "Q: {{ question }} ({{ style }})" and draft["user_prompt"] == "Q: {{ question }} (short)"
    assert fn == {"name": "tidy", "kind": "function", "function": "export_tidy", "parameters": {"suffix": "!"}}
    assert polish["model"] == "fake-large" and polish["parameters"] == {"max_tokens": 6}
    assert polish["system_prompt"] == "Polish in a dry tone." and polish["user_prompt"] == "Improve: {{ tidy }} for {{ question }}"
    assert record["score"] == pytest.approx(row["score"]) and record["n"] == 2 == row["n"]
    assert record["score_ci"] == [pytest.approx(row["ci_low"]), pytest.approx(row["ci_high"])]
    assert record["failed"] == 0 and record["approved"] is False


def test_json_and_yaml_carry_every_stage_with_variables_substituted(swept):
    wb, exp, srv = swept
    record = json.loads(wb.export(exp.key, "json"))
    _check_whole(record, wb, exp, srv.base_url)
    assert record["config_id"] == wb.leaderboard(exp.key).iloc[0]["full_config_id"]
    text = wb.export(exp.key, "yaml")
    assert "&id" not in text and "*id" not in text  # no anchors: a drop-in file for people and tools
    doc = yaml.safe_load(text)
    _check_whole({**doc, **doc["metadata"]}, wb, exp, srv.base_url)
    # The single-stage shortcut keys describe the last prompt stage, with its text substituted.
    assert doc["model"] == "fake-large" and doc["system_prompt"] == "Polish in a dry tone."
    for t in (json.dumps(record), text, wb.export(exp.key, "env"), wb.export(exp.key, "report")):
        assert SECRET not in t


def test_env_has_one_variable_per_stage_field(swept):
    wb, exp, srv = swept
    record = json.loads(wb.export(exp.key, "json"))
    persona = record["variables"]["persona"]
    env = wb.export(exp.key, "env")
    values = dict(line.split("=", 1) for line in env.splitlines() if line and not line.startswith("#"))
    temperature = record["stages"][0]["parameters"]["temperature"]
    assert values == {
        "DRAFT_LLM_MODEL": "fake-small", "DRAFT_LLM_API_URL": srv.base_url, "DRAFT_LLM_MAX_TOKENS": "8",
        "DRAFT_LLM_TEMPERATURE": json.dumps(temperature), "DRAFT_LLM_SYSTEM_PROMPT": f"'You are {persona}.'",
        "DRAFT_LLM_USER_PROMPT": "'Q: {{ question }} (short)'",
        "TIDY_FUNCTION": "export_tidy", "TIDY_SUFFIX": "'!'",
        "POLISH_LLM_MODEL": "fake-large", "POLISH_LLM_API_URL": srv.base_url, "POLISH_LLM_MAX_TOKENS": "6",
        "POLISH_LLM_SYSTEM_PROMPT": "'Polish in a dry tone.'", "POLISH_LLM_USER_PROMPT": "'Improve: {{ tidy }} for {{ question }}'",
    }
    # The file is valid shell: sourcing it gives back the exact texts.
    out = subprocess.run(["sh", "-c", f'{env}\nprintf %s "$DRAFT_LLM_SYSTEM_PROMPT"'], capture_output=True, text=True)
    assert out.stdout == f"You are {persona}."


def test_report_shows_every_stage(swept):
    wb, exp, _ = swept
    persona = json.loads(wb.export(exp.key, "json"))["variables"]["persona"]
    report = wb.export(exp.key, "report")
    assert "fake-small" in report and "export_tidy" in report and "Polish in a dry tone." in report
    assert f"You are {persona}." in report and "&id" not in report


def test_approved_configuration_is_exported_and_forked(swept):
    wb, exp, _ = swept
    board = wb.leaderboard(exp.key)
    last = board.iloc[-1]["full_config_id"]
    wb.approve(exp.key, last, by="ana")
    record = json.loads(wb.export(exp.key, "json"))
    assert record["config_id"] == last and record["approved"] is True and record["approved_by"] == "ana"
    child = wb.fork(exp.key)  # no config given: the approved one, not the top row
    varied = board.set_index("full_config_id").loc[last]
    assert child.space["persona"] == [varied["persona"]]
    assert child.space["draft.temperature"] == [varied["draft.temperature"]]


def test_cli_export_whole(swept, tmp_path):
    wb, exp, _ = swept
    last = wb.leaderboard(exp.key).iloc[-1]["full_config_id"]
    db = wb.db_path
    wb.close()
    pl.Workbench(db).approve(exp.key, last)
    res = cli(db, "export", exp.key, "--format", "json")
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    assert record["config_id"] == last and [s["name"] for s in record["stages"]] == ["draft", "tidy", "polish"]
    assert record["stages"][0]["system_prompt"] == f"You are {record['variables']['persona']}."
    res = cli(db, "export", exp.key, "--format", "yaml", "-o", str(tmp_path / "best.yaml"))
    assert res.returncode == 0 and "&id" not in (tmp_path / "best.yaml").read_text()


def test_cli_fork_starts_from_the_approved_configuration(db, server):
    wb = pl.Workbench(db)
    exp = fake_experiment(server.base_url)
    wb.run(exp)
    board = wb.leaderboard(exp.key).set_index("full_config_id")
    last = board.index[-1]
    wb.approve(exp.key, last)
    wb.close()
    res = cli(db, "fork", exp.key, "--name", "from-approved")
    assert res.returncode == 0, res.stderr
    child = pl.Workbench(db).load("tests/from-approved")
    assert child.space == {"answer.temperature": [board.loc[last, "answer.temperature"]], "persona": [board.loc[last, "persona"]]}


def cli(db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, *args], capture_output=True, text=True, timeout=120)
