"""Exports of an experiment's outcome: the best configuration as JSON, YAML or a .env snippet, and
a full markdown report. The best configuration is the approved one when a person (or agent)
approved one, else the leaderboard's top. Nothing here ever reads a key's value: endpoints are
exported by base URL (and key *variable name* in comments at most).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import yaml

from .errors import NotFoundError
from .store import Store

FORMATS = ("json", "yaml", "env", "report")


def _endpoint_url(store: Store, spec: dict[str, Any], endpoint: str) -> str:
    inline = (spec.get("endpoints") or {}).get(endpoint)
    if inline:
        return str(inline["base_url"])
    stored = store.endpoints().get(endpoint)
    if stored:
        return str(stored["base_url"])
    return "embedded" if endpoint == "local" else endpoint


def best_configuration(store: Store, experiment: dict[str, Any], board: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(configuration row, its leaderboard row) — approved first, else the top of the board."""
    configs = store.configurations(experiment["id"])
    approved = [c for c in configs if c.get("decision") == "approved"]
    rows = {r["full_config_id"]: r for r in board.to_dict(orient="records")} if len(board) else {}
    if approved:
        chosen = max(approved, key=lambda c: c.get("decided_at") or "")
        return chosen, rows.get(chosen["id"])
    if not rows:
        raise NotFoundError(f"experiment {experiment['project']}/{experiment['name']} has no scored runs yet; run a sweep first")
    top = board.iloc[0]["full_config_id"]
    return next(c for c in configs if c["id"] == top), rows[top]


def _clean(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def best_record(store: Store, experiment: dict[str, Any], board: Any) -> dict[str, Any]:
    config, row = best_configuration(store, experiment, board)
    spec = experiment["spec"]
    stages = []
    for st in config["config"]["stages"]:
        if st["kind"] == "prompt":
            endpoint, _, model = st["model"].partition("/")
            stages.append({"name": st["name"], "model": model, "endpoint": _endpoint_url(store, spec, endpoint),
                           "parameters": dict(st["params"]), "system_prompt": st.get("system"), "user_template": st["user"]})
        else:
            stages.append({"name": st["name"], "function": st["function"], "parameters": dict(st["params"])})
    record = {
        "experiment": f"{experiment['project']}/{experiment['name']}",
        "config_id": config["id"],
        "varied": config["varied"],
        "variables": config["config"].get("vars", {}),
        "score": _clean(row["score"]) if row else None,
        "ci": [_clean(row["ci_low"]), _clean(row["ci_high"])] if row else None,
        "n": int(row["n"]) if row else 0,
        "approved": config.get("decision") == "approved",
        "approved_by": config.get("decided_by") if config.get("decision") == "approved" else None,
        "stages": stages,
        "exported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return record


def _primary(record: dict[str, Any]) -> dict[str, Any]:
    prompts = [s for s in record["stages"] if "model" in s]
    return prompts[-1] if prompts else record["stages"][-1]


def _render_system(stage: dict[str, Any], variables: dict[str, Any]) -> str | None:
    system = stage.get("system_prompt")
    if system and variables:
        from . import templates

        try:
            return templates.render(system, {**variables})
        except templates.TemplateError:
            return system  # it reads sample fields: export the template itself
    return system


def to_json(record: dict[str, Any]) -> str:
    main = _primary(record)
    flat = {
        "model": main.get("model"),
        "endpoint": main.get("endpoint"),
        **{k: v for k, v in main.get("parameters", {}).items()},
        "system_prompt": _render_system(main, record["variables"]),
        "user_template": main.get("user_template"),
        "score": record["score"],
        "score_ci": record["ci"],
        "n": record["n"],
        "experiment": record["experiment"],
        "config_id": record["config_id"],
        "approved": record["approved"],
        "exported_at": record["exported_at"],
    }
    if len(record["stages"]) > 1:
        flat["stages"] = record["stages"]
    return json.dumps(flat, indent=2, ensure_ascii=False)


def to_yaml(record: dict[str, Any]) -> str:
    main = _primary(record)
    doc: dict[str, Any] = {
        "model": main.get("model"),
        "endpoint": main.get("endpoint"),
        "parameters": main.get("parameters", {}),
        "system_prompt": _render_system(main, record["variables"]),
        "user_template": main.get("user_template"),
    }
    if len(record["stages"]) > 1:
        doc["stages"] = record["stages"]
    doc["metadata"] = {"score": record["score"], "score_ci": record["ci"], "n": record["n"], "experiment": record["experiment"],
                       "config_id": record["config_id"], "approved": record["approved"], "exported_at": record["exported_at"]}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)


def _env_value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v)
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]*", text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def to_env(record: dict[str, Any]) -> str:
    lines = []
    prompts = [s for s in record["stages"] if "model" in s]
    for stage in prompts:
        prefix = "LLM_" if len(prompts) == 1 else f"{stage['name'].upper()}_LLM_"
        lines.append(f"{prefix}MODEL={_env_value(stage['model'])}")
        lines.append(f"{prefix}API_URL={_env_value(stage['endpoint'])}")
        for k, v in stage["parameters"].items():
            lines.append(f"{prefix}{k.upper()}={_env_value(v)}")
        system = _render_system(stage, record["variables"])
        if system:
            lines.append(f"{prefix}SYSTEM_PROMPT={_env_value(system)}")
    score = "n/a" if record["score"] is None else f"{record['score']:.3f}"
    lines.append(f"# Score: {score} (n={record['n']}) | Experiment: {record['experiment']} | Config: {record['config_id'][:12]}")
    return "\n".join(lines) + "\n"


def _md_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if isinstance(v, float):
            return f"{v:.3f}"
        return str(v).replace("|", "\\|").replace("\n", " ")[:80]

    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(out)


def report(store: Store, experiment: dict[str, Any], board: Any) -> str:
    spec = experiment["spec"]
    record = best_record(store, experiment, board)
    rows = board.to_dict(orient="records")
    varied = [c for c in board.columns if c not in ("rank", "config_id", "score", "ci_low", "ci_high", "n", "tokens", "cost",
                                                     "latency_ms", "failed", "decision", "full_config_id", "distinguishable")]
    events = store.events(experiment["id"])
    counts = Counter(e["type"] for e in events)
    sweeps = list(store.db.query("SELECT * FROM sweeps WHERE experiment_id = ? ORDER BY started_at", [experiment["id"]]))
    spent_tokens = sum((s["tokens_in"] or 0) + (s["tokens_out"] or 0) for s in sweeps)
    spent_cost = sum(s["cost"] or 0 for s in sweeps)
    lines = [f"# Experiment report: {experiment['project']}/{experiment['name']}", ""]
    if experiment.get("description"):
        lines += [experiment["description"], ""]
    n_samples = len(spec["samples"]) if isinstance(spec["samples"], list) else spec["samples"]
    lines += [
        f"- Status: **{experiment['status']}**; {len(rows)} configuration(s) ranked; samples: {n_samples}",
        "- Stages: " + " → ".join(f"`{s['name']}` ({s.get('model') or s.get('function')})" for s in spec["stages"]),
        "- Scorers: " + ", ".join(f"{s.get('label') or s['name']} ×{s.get('weight', 1)}" for s in spec["scorers"]),
        f"- Spent: {spent_tokens:,} tokens, ${spent_cost:.4f} estimated, over {len(sweeps)} sweep(s)",
        "", "## Parameter space", "",
    ]
    for key, value in (spec.get("space") or {}).items():
        lines.append(f"- `{key}`: {json.dumps(value, ensure_ascii=False)}")
    if not spec.get("space"):
        lines.append("- (nothing varied)")
    lines += ["", "## Leaderboard", "", "Score is the weighted mean over samples with a 95% interval; n is the number of samples.", ""]
    lines.append(_md_table(rows[:20], ["rank", "config_id", *varied, "score", "ci_low", "ci_high", "n", "tokens", "cost", "latency_ms"]))
    lines += ["", "## Best configuration", "",
              f"Config `{record['config_id'][:12]}`{' (approved by ' + str(record['approved_by'] or '?') + ')' if record['approved'] else ''}: "
              f"score {record['score'] if record['score'] is None else round(record['score'], 3)} over n={record['n']}.", "",
              "```yaml", to_yaml(record).rstrip(), "```", "", "### Best outputs", ""]
    for run in store.runs(experiment["id"], record["config_id"], limit=5):
        lines.append(f"- sample {run['sample_index']} (score {run['score'] if run['score'] is None else round(run['score'], 3)}): "
                     f"{(run['output'] or run['error'] or '').strip()[:300]!r}")
    lines += ["", "## Timeline", ""]
    if events:
        lines.append(f"From {events[0]['ts']} to {events[-1]['ts']}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items())))
        for e in events:
            if not e["type"].startswith("run."):
                lines.append(f"- {e['ts']} `{e['type']}` {json.dumps(e['payload'], ensure_ascii=False)[:160]}")
    return "\n".join(lines) + "\n"


def export(store: Store, experiment: dict[str, Any], board: Any, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "report":
        return report(store, experiment, board)
    record = best_record(store, experiment, board)
    return {"json": to_json, "yaml": to_yaml, "env": to_env}[fmt](record)
