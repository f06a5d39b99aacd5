"""The JUnit XML report of ``promptlooper run --junit FILE``.

One test case per configuration, named by the parameters that vary, so a CI server lists each point
of the space with its score and the reasons of its failed runs; with ``--fail-under`` one more test
case holds the threshold check (:func:`promptlooper.ci.check_fail_under`). A module of its own so
that a run without ``--junit`` never imports an XML library.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ci import Threshold
from .engine.failures import failure_reason
from .engine.progress import Progress

if TYPE_CHECKING:
    from .store import Store


def write_junit(store: Store, key: str, board: list[dict[str, Any]], progress: Progress, path: str | Path,
                threshold: Threshold | None = None) -> None:
    """A JUnit XML report of the experiment's configurations (see the module docstring); ``board``
    is its leaderboard's rows, rejected configurations included."""
    exp = store.experiment(key)
    scored = {str(r["full_config_id"]): r for r in board}
    configs = store.configurations(exp["id"])
    errors: dict[str, Counter[str]] = {}
    runs: Counter[str] = Counter()
    seconds: Counter[str] = Counter()  # the configuration's runs, end to end, summed
    for run in store.runs(exp["id"]):
        runs[run["config_id"]] += 1
        seconds[run["config_id"]] += (run["duration_ms"] or 0.0) / 1000
        if run["status"] == "failed":
            errors.setdefault(run["config_id"], Counter())[failure_reason(run["error"])] += 1
    suite = ET.Element("testsuite", name=key, timestamp=_now(), time=f"{progress.elapsed:.3f}")
    props = ET.SubElement(suite, "properties")
    for name, value in (("status", progress.status), ("stop_reason", progress.stop_reason or ""),
                        ("runs", progress.total), ("failed_runs", progress.failed), ("tokens", progress.tokens),
                        ("cost", f"{progress.cost:.6f}")):
        ET.SubElement(props, "property", name=name, value=str(value))
    n_fail = n_skip = 0
    for config in configs:
        cid = config["id"]
        varied = config.get("varied") or {}
        label = ", ".join(f"{k}={v}" for k, v in varied.items()) or cid[:12]
        case = ET.SubElement(suite, "testcase", classname=key, name=f"{label} [{cid[:12]}]", time=f"{seconds[cid]:.3f}")
        row = scored.get(cid)
        out = [f"config_id: {cid}", f"runs: {runs.get(cid, 0)}"]
        if row is not None:
            out.append(f"score: {row['score']:.4f} (95% interval {row['ci_low']:.4f}..{row['ci_high']:.4f}, n={row['n']})")
            if row.get("decision"):
                out.append(f"decision: {row['decision']}")
        failed = errors.get(cid)
        if failed:
            n_fail += 1
            total = sum(failed.values())
            detail = "\n".join(f"{n} × {reason}" for reason, n in failed.most_common())
            first = failed.most_common(1)[0][0]
            ET.SubElement(case, "failure", message=f"{total} run(s) failed: {first}"[:500], type="RunFailed").text = detail
        elif not runs.get(cid):
            n_skip += 1
            ET.SubElement(case, "skipped", message="no run of this configuration finished in this database yet")
        ET.SubElement(case, "system-out").text = "\n".join(out)
    n_tests = len(configs)
    if threshold is not None:
        n_tests += 1
        case = ET.SubElement(suite, "testcase", classname=key, name="fail-under", time="0")
        if not threshold.ok:
            n_fail += 1
            ET.SubElement(case, "failure", message=threshold.message, type="FailUnder").text = threshold.message
        ET.SubElement(case, "system-out").text = threshold.message
    suite.set("tests", str(n_tests))
    suite.set("failures", str(n_fail))
    suite.set("errors", "0")
    suite.set("skipped", str(n_skip))
    root = ET.Element("testsuites", name="promptlooper", tests=str(n_tests), failures=str(n_fail), errors="0")
    root.append(suite)
    ET.indent(root)
    Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
