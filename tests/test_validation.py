"""Each invalid experiment gets its specific message, with its field path, and zero model calls."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import promptlooper as pl
from promptlooper.testing import FakeModel, FakeServer


def _messages(problems: list[pl.Problem]) -> list[str]:
    return [str(p) for p in problems]


def _write(tmp_path: Path, data: dict, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def _base(server: FakeServer | FakeModel) -> dict:
    return {
        "name": "v",
        "samples": [{"question": "q1", "reference": "a"}, {"question": "q2", "reference": "b"}],
        "stages": [{"name": "answer", "model": "fake/fake-small", "user": "{{ question }}"}],
        "space": {"answer.temperature": [0.0, 1.0]},
        "scorers": [{"name": "contains", "field": "reference"}],
        "endpoints": {"fake": {"base_url": server.base_url}},
    }


CASES = [
    ("unknown template variable", lambda d: d["stages"][0].update(user="{{ qestion }}"),
     "stages[0].user", "unknown template variable 'qestion'", "did you mean 'question'?"),
    ("unknown scorer", lambda d: d["scorers"].append({"name": "keywrd", "words": ["x"]}),
     "scorers[1].name", "unknown scorer 'keywrd'", "did you mean 'keyword'?"),
    ("empty space", lambda d: d["space"].update({"answer.top_p": []}),
     "space.answer.top_p", "empty list of values", "at least one value"),
    ("bad range", lambda d: d["space"].update({"answer.top_p": {"min": 0.9, "max": 0.1, "step": 0.1}}),
     "space.answer.top_p", "greater than max", "swap"),
    ("range without step in grid", lambda d: d["space"].update({"answer.top_p": {"min": 0.1, "max": 0.9}}),
     "space.answer.top_p", "needs a step", "strategy: random"),
    ("out-of-range parameter", lambda d: d["space"].update({"answer.temperature": [0.5, 3.0]}),
     "space.answer.temperature", "value 3.0", "range"),
    ("unreadable samples file", lambda d: d.update(samples="missing.jsonl"),
     "samples", "does not exist", "check the path"),
    ("endpoint not configured", lambda d: d["stages"][0].update(model="nowhere/gpt"),
     "stages[0].model", "endpoint 'nowhere' is not configured", "endpoints add nowhere"),
    ("api key variable unset", lambda d: d["endpoints"]["fake"].update(api_key_env="PL_TEST_UNSET_KEY"),
     "stages[0].model", "$PL_TEST_UNSET_KEY, which is not set", "export PL_TEST_UNSET_KEY"),
    ("bad scorer argument", lambda d: d["scorers"].append({"name": "keyword", "word": ["x"]}),
     "scorers[1].", "", "keyword"),
    ("scorer field missing from samples", lambda d: d["scorers"].append({"name": "exact", "field": "answer_text"}),
     "scorers[1].field", "'answer_text' is missing", ""),
    ("unknown stage field", lambda d: d["space"].update({"answer.temprature": [0.1]}),
     "space.answer.temprature", "unknown stage field", "did you mean 'temperature'?"),
    ("unused space variable", lambda d: d["space"].update({"tone": ["a", "b"]}),
     "space.tone", "not used by any template", "{{ tone }}"),
    ("unknown top-level field", lambda d: d.update(sampels=[]),
     "sampels", "unknown field", "spelling"),
    ("template syntax", lambda d: d["stages"][0].update(user="{{ question "),
     "stages[0].user", "syntax error", "Jinja2"),
    ("no scorers", lambda d: d.update(scorers=[]), "scorers", "no scorers", "at least one scorer"),
]


@pytest.mark.parametrize(("label", "mutate", "path", "message", "hint"), CASES, ids=[c[0] for c in CASES])
def test_each_invalid_experiment_gets_its_message_and_no_call(tmp_path, fake, wb, label, mutate, path, message, hint):
    data = _base(fake)
    mutate(data)
    f = _write(tmp_path, data)
    problems = wb.validate(f)
    matching = [p for p in problems if p.path.startswith(path) and message in p.message and hint in p.hint + p.message]
    assert matching, f"{label}: expected {path} / {message!r}, got {_messages(problems)}"
    with pytest.raises(pl.SpecError):
        wb.run(pl.load_experiment(f))
    assert fake.stats()["requests"] == 0


def test_all_problems_reported_at_once(tmp_path, fake, wb):
    data = _base(fake)
    data["stages"][0]["user"] = "{{ qestion }}"
    data["stages"][0]["params"] = {"temperature": 5}
    data["scorers"] = [{"name": "nope"}]
    problems = wb.validate(_write(tmp_path, data))
    paths = {p.path for p in problems}
    assert {"stages[0].params.temperature", "stages[0].user", "scorers[0].name"} <= paths


def test_cli_validate_exit_status_2_and_lists_paths(tmp_path, server, db):
    data = _base(server)
    data["stages"][0]["user"] = "{{ qestion }}"
    f = _write(tmp_path, data)
    proc = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, "validate", str(f)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "stages[0].user: unknown template variable 'qestion'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, "run", str(f)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "nothing was run" in proc.stderr
    assert server.stats()["requests"] == 0


def test_yaml_and_python_share_one_schema(tmp_path, fake):
    data = _base(fake)
    from_yaml = pl.load_experiment(_write(tmp_path, data))
    from_python = pl.Experiment(
        name="v", samples=data["samples"],
        stages=[pl.PromptStage(name="answer", model="fake/fake-small", user="{{ question }}")],
        space={"answer.temperature": [0.0, 1.0]}, scorers=[pl.ScorerSpec(name="contains", args={"field": "reference"})],
        endpoints={"fake": pl.EndpointSpec(base_url=fake.base_url)},
    )
    assert from_yaml.to_record() == from_python.to_record()


def test_samples_from_jsonl_and_csv(tmp_path, fake, wb):
    (tmp_path / "s.jsonl").write_text("\n".join(json.dumps(s) for s in _base(fake)["samples"]))
    (tmp_path / "s.csv").write_text("question,reference\nq1,a\nq2,b\n")
    for name in ("s.jsonl", "s.csv"):
        data = _base(fake)
        data["samples"] = name
        assert wb.validate(_write(tmp_path, data)) == []
    (tmp_path / "bad.jsonl").write_text('{"question": "ok", "reference": "x"}\nnot json\n')
    data = _base(fake)
    data["samples"] = "bad.jsonl"
    problems = wb.validate(_write(tmp_path, data))
    assert any("line 2" in p.path and "invalid JSON" in p.message for p in problems)
