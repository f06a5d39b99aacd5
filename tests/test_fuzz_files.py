"""Hostile experiment files: every one gets a clear error naming its place, within seconds, within
a screenful, and no model is ever called. Files under 1 MB of any content included."""

from __future__ import annotations

import contextlib
import io
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
from fuzz_corpus import write

from promptlooper import cli

SECONDS = 5.0
SCREENFUL = 60  # lines


class Hang(Exception):
    pass


def _validate(db: str, path: Path) -> tuple[int | None, str, float, str]:
    """(exit code, stderr+stdout, seconds, traceback or '')"""
    out, err = io.StringIO(), io.StringIO()

    def alarm(*_):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, SECONDS * 4)
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main(["--db", db, "validate", str(path)])
        tb = ""
    except Hang:
        rc, tb = None, "hang"
    except BaseException:  # noqa: BLE001 - a traceback is exactly what this test counts
        rc, tb = None, traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return rc, err.getvalue() + out.getvalue(), time.perf_counter() - t0, tb


def test_fuzzed_files_get_clear_errors_and_call_nothing(tmp_path, server):
    files = write(tmp_path / "corpus", server.base_url)
    assert len(files) >= 300
    db = str(tmp_path / "fuzz.db")
    tracebacks, hangs, slow, unclear, long_output, valid = [], [], [], [], [], []
    for path in files:
        rc, text, seconds, tb = _validate(db, path)
        if tb == "hang":
            hangs.append(path.name)
        elif tb:
            tracebacks.append(f"{path.name}: {tb.strip().splitlines()[-1]}")
        elif rc == 0:
            valid.append(path.name)  # a mutation that is still a valid experiment (e.g. a weight of 42)
        elif rc != 2 or "✗" not in text or ":" not in text.split("\n", 1)[1]:
            unclear.append(f"{path.name}: rc={rc} {text[:200]!r}")
        if seconds > SECONDS:
            slow.append(f"{path.name}: {seconds:.1f}s")
        if text.count("\n") > SCREENFUL:
            long_output.append(f"{path.name}: {text.count(chr(10))} lines")
    report = (f"{len(files)} files: {len(files) - len(valid)} refused, {len(valid)} valid, "
              f"{len(tracebacks)} tracebacks, {len(hangs)} hangs, {len(slow)} slow, {len(unclear)} unclear, "
              f"{server.stats()['requests']} model calls")
    print(report)
    assert not tracebacks, "\n".join(tracebacks[:20])
    assert not hangs, hangs
    assert not slow, slow
    assert not unclear, "\n".join(unclear[:20])
    assert not long_output, long_output
    assert len(valid) < len(files) / 4, valid   # the corpus is hostile: most files must be refused
    assert server.stats()["requests"] == 0                # validation never calls a model


@pytest.mark.parametrize("name, needle", [
    ("alias-bomb", "YAML aliases"),
    ("alias-recursive", "refers to itself"),
    ("deep-brackets", "levels deep"),
    ("binary", "not UTF-8"),
    ("nul", "binary file"),
    ("oversized", "at most 1,000,000"),
    ("range-1e12", "at most 100,000"),
    ("range-nan", "finite number"),
    ("named-project-a_b", "project"),
    ("base-url-empty-host", "names no host"),
    ("length-negative", "a length is 0 or more"),
    ("length-swapped", "swap them"),
    ("5000-bad-values", "more"),  # 5,000 out-of-range temperatures: a screenful, then a count
])
def test_each_hostile_file_names_its_problem(tmp_path, server, name, needle):
    files = {p.name.split("-", 1)[1].removesuffix(".yaml"): p for p in write(tmp_path / "c", server.base_url, {name})}
    rc, text, seconds, tb = _validate(str(tmp_path / "x.db"), files[name])
    assert not tb and rc == 2, (tb, text)
    assert needle in text, text
    assert seconds < SECONDS


def test_a_million_configurations_validate_in_seconds_and_run_asks_first(tmp_path, server):
    files = {p.name.split("-", 1)[1].removesuffix(".yaml"): p for p in write(tmp_path / "c", server.base_url, {"space-1e6"})}
    big = files["space-1e6"]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", str(tmp_path / "b.db"), "validate", str(big)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "1,002,001 configuration(s)" in out.stdout
    assert time.perf_counter() - t0 < 30  # whole process, on a loaded machine; 1:20 and 2 GB before
    # run: refused without --yes when nobody is at a terminal, before any call
    out = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", str(tmp_path / "b.db"), "run", str(big)],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2 and "--yes" in out.stderr and "model calls" in out.stderr, out.stderr
    assert server.stats()["requests"] == 0


def test_confirmation_limit_is_configurable_and_yes_runs(tmp_path, server, monkeypatch):
    from helpers import fake_experiment, write_experiment

    exp = fake_experiment(server.base_url, name="asks")  # 4 configurations × 3 samples = 12 runs
    f = write_experiment(tmp_path / "asks.yaml", exp)
    db = str(tmp_path / "a.db")
    env = {"PROMPTLOOPER_CONFIRM_CALLS": "5"}
    base = [sys.executable, "-m", "promptlooper.cli", "--db", db, "run", str(f), "--quiet"]
    import os

    refused = subprocess.run(base, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                             env={**os.environ, **env})
    assert refused.returncode == 2 and "asks above 5 calls" in refused.stderr, refused.stderr
    assert server.stats()["requests"] == 0
    ran = subprocess.run([*base, "--yes"], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert ran.returncode == 0, ran.stderr
    assert server.stats()["completions"] == 12


@pytest.mark.parametrize("argv, needle", [
    (["redirect", "x/y", "--space", "{bad"], "--space: not JSON"),
    (["webhooks", "add", "*", "notaurl"], "http://"),
    (["webhooks", "add", "*", "http://127.0.0.1:9/x", "--header", "NOEQUALS"], "NAME=ENV_VAR"),
])
def test_cli_refusals_are_messages_not_tracebacks(tmp_path, argv, needle):
    db = str(tmp_path / "c.db")
    out = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, *argv],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr
    assert needle in out.stderr


@pytest.mark.parametrize("db, argv, needle", [
    ("/", ["experiments"], "cannot open the database /"),                       # a folder
    ("/nonexistent-folder/x.db", ["experiments"], "no PromptLooper database"),   # reading: nothing created
    ("/nonexistent-folder/x.db", ["endpoints", "add", "e", "--base-url", "http://127.0.0.1:9/v1"],
     "cannot open the database /nonexistent-folder/x.db"),                      # writing: no such folder
])
def test_an_unopenable_database_is_a_message(db, argv, needle):
    out = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, *argv],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert needle in out.stderr


def test_export_into_a_missing_folder_is_a_message(tmp_path, wb, make_exp, db):
    wb.run(make_exp(name="exported"))
    out = subprocess.run([sys.executable, "-m", "promptlooper.cli", "--db", db, "export", "tests/exported",
                          "-o", str(tmp_path / "missing" / "best.json")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "--output: no folder" in out.stderr
