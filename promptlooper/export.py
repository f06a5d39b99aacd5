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

from . import templates
from .errors import NotFoundError
from .store import Store

FORMATS = ("json", "yaml", "env", "report")


def _endpoint_url(store: Store, spec: dict[str, Any], endpoint: str) -> str:
    inline = (spec.get("endpoints") or {}).get(endpoint)
    if inline:  # an endpoint group has members, not a URL of its own
        return str(inline["base_url"]) if "base_url" in inline else "group: " + ", ".join(inline["group"])
    stored = store.endpoints().get(endpoint)
    if stored:
        return str(stored["base_url"])
    return "embedded" if endpoint == "local" else endpoint


def best_configuration(store: Store, experiment: dict[str, Any], board: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(configuration row, its leaderboard row): the approved one on the board, else the board's top.

    Only configurations on ``board`` count, so an approval given under an earlier definition of
    the experiment never exports what the experiment no longer contains.
    """
    rows = {r["full_config_id"]: r for r in board.to_dict(orient="records")} if len(board) else {}
    configs = {c["id"]: c for c in store.configurations(experiment["id"]) if c["id"] in rows}
    approved = [c for c in configs.values() if c.get("decision") == "approved"]
    if approved:
        chosen = max(approved, key=lambda c: c.get("decided_at") or "")
        return chosen, rows[chosen["id"]]
    scored = [r for r in rows.values() if not _missing(r["score"])]
    if not scored:
        raise NotFoundError(f"experiment {experiment['project']}/{experiment['name']} has no scored runs yet; run a sweep first")
    top = str(board.iloc[0]["full_config_id"])
    return configs[top], rows[top]


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _clean(v: Any) -> Any:
    return None if _missing(v) else v


def _prompt_stage(store: Store, spec: dict[str, Any], st: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
    endpoint, _, model = st["model"].partition("/")
    system, user = st.get("system"), st.get("user")
    out: dict[str, Any] = {"name": st["name"], "kind": "prompt", "model": model, "endpoint": _endpoint_url(store, spec, endpoint),
                           "parameters": dict(st["params"])}
    # The texts as the winner sent them, but for what only a sample (or an earlier stage) supplies.
    out["system_prompt"] = templates.substitute(system, variables) if system else None
    out["user_prompt"] = templates.substitute(user, variables) if user is not None else None
    out["system_template"], out["user_template"] = system, user
    for extra in ("messages", "tools", "tool_choice"):  # a chat stage's turns and the tools it offers
        if extra in st:
            out[extra] = st[extra]
    return out


def best_record(store: Store, experiment: dict[str, Any], board: Any) -> dict[str, Any]:
    """The whole winning configuration: every stage, its variables, score, interval, n, failures."""
    config, row = best_configuration(store, experiment, board)
    spec = experiment["spec"]
    variables = dict(config["config"].get("vars", {}))
    stages = []
    for st in config["config"]["stages"]:
        if st["kind"] == "prompt":
            stages.append(_prompt_stage(store, spec, st, variables))
        else:
            stages.append({"name": st["name"], "kind": "function", "function": st["function"], "parameters": dict(st["params"])})
    approved = config.get("decision") == "approved"
    return {
        "experiment": f"{experiment['project']}/{experiment['name']}",
        "config_id": config["id"],
        "varied": config["varied"],
        "variables": variables,
        "stages": stages,
        "score": _clean(row["score"]) if row else None,
        "score_ci": [_clean(row["ci_low"]), _clean(row["ci_high"])] if row else None,
        "n": int(row["n"]) if row else 0,
        "failed": int(row.get("failed") or 0) if row else 0,
        "approved": approved,
        "approved_by": config.get("decided_by") if approved else None,
        "exported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _primary(record: dict[str, Any]) -> dict[str, Any]:
    """The stage a single-stage user reads first: the last prompt stage (the pipeline's answer)."""
    prompts = [s for s in record["stages"] if s["kind"] == "prompt"]
    return prompts[-1] if prompts else record["stages"][-1]


_TEXTS = ("system_prompt", "user_prompt", "system_template", "user_template")
_METADATA = ("score", "score_ci", "n", "failed", "experiment", "config_id", "varied", "approved", "approved_by", "exported_at")


def to_json(record: dict[str, Any]) -> str:
    main = _primary(record)
    flat: dict[str, Any] = {"model": main.get("model"), "endpoint": main.get("endpoint"), **main.get("parameters", {})}
    flat.update({k: main.get(k) for k in _TEXTS})
    flat.update({"variables": record["variables"], "stages": record["stages"]})
    flat.update({k: record[k] for k in _METADATA})
    return json.dumps(flat, indent=2, ensure_ascii=False)


class _PlainDumper(yaml.SafeDumper):
    """No ``&id001`` anchors: a value shared by two keys is written out twice, as a person would."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(record: dict[str, Any]) -> str:
    main = _primary(record)
    doc: dict[str, Any] = {"model": main.get("model"), "endpoint": main.get("endpoint"), "parameters": main.get("parameters", {})}
    doc.update({k: main.get(k) for k in _TEXTS})
    doc.update({"variables": record["variables"], "stages": record["stages"], "metadata": {k: record[k] for k in _METADATA}})
    return yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=100)


def _env_value(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v)
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]*", text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def _env_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text).upper()


def to_env(record: dict[str, Any]) -> str:
    """One variable per stage field that has a value; a lone prompt stage keeps the short LLM_ names."""
    lines = []
    alone = len(record["stages"]) == 1 and record["stages"][0]["kind"] == "prompt"
    for stage in record["stages"]:
        if stage["kind"] == "prompt":
            prefix = "LLM_" if alone else f"{_env_name(stage['name'])}_LLM_"
            fields = [("MODEL", stage["model"]), ("API_URL", stage["endpoint"])]
            fields += [(_env_name(k), v) for k, v in stage["parameters"].items()]
            fields += [("SYSTEM_PROMPT", stage["system_prompt"]), ("USER_PROMPT", stage["user_prompt"])]
        else:
            prefix = f"{_env_name(stage['name'])}_"
            fields = [("FUNCTION", stage["function"]), *((_env_name(k), v) for k, v in stage["parameters"].items())]
        lines += [f"{prefix}{name}={_env_value(value)}" for name, value in fields if value is not None and value != ""]
    score = "n/a" if record["score"] is None else f"{record['score']:.3f}"
    lines.append(f"# Score: {score} (n={record['n']}, failed={record['failed']}) | Experiment: {record['experiment']}"
                 f" | Config: {record['config_id'][:12]}")
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
                                                     "latency_ms", "failed", "failure", "decision", "full_config_id",
                                                     "distinguishable")]
    events = store.events(experiment["id"])
    counts = Counter(e["type"] for e in events)
    sweeps = store.sweeps_of(experiment["id"])
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
    lines.append(_md_table(rows[:20], ["rank", "config_id", *varied, "score", "ci_low", "ci_high", "n", "failed", "tokens", "cost",
                                        "latency_ms"]))
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
