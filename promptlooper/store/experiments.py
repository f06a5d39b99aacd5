"""Projects, experiments, their configurations and definitions: the store's catalogue.

Part of :class:`~promptlooper.store.Store` (one class per noun, all over the same connection).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import NotFoundError
from .batchwriter import now_iso
from .db import Queries
from .records import dumps, new_id


class Experiments(Queries):
    """Projects, experiments, configurations and definitions."""

    # ------------------------------------------------------------------ projects & experiments
    def upsert_project(self, name: str, description: str = "") -> str:
        with self.cx.write() as c:
            row = c.execute("SELECT id FROM projects WHERE name = ?", (name,)).fetchone()
            if row:
                return str(row[0])
            pid = new_id()
            ts = now_iso()
            c.execute(
                "INSERT INTO projects (id, name, description, created_at, updated_at) VALUES (?,?,?,?,?)",
                (pid, name, description, ts, ts),
            )
            return pid

    def projects(self) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT * FROM projects ORDER BY name"))

    def upsert_experiment(self, project: str, name: str, spec: dict[str, Any], description: str = "", parent_id: str | None = None) -> str:
        pid = self.upsert_project(project)
        ts = now_iso()
        with self.cx.write() as c:
            row = c.execute("SELECT id FROM experiments WHERE project_id = ? AND name = ?", (pid, name)).fetchone()
            if row:
                c.execute(
                    "UPDATE experiments SET spec = ?, description = ?, updated_at = ? WHERE id = ?",
                    (dumps(spec), description, ts, row[0]),
                )
                return str(row[0])
            eid = new_id()
            c.execute(
                "INSERT INTO experiments (id, project_id, name, description, spec, status, parent_id, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (eid, pid, name, description, dumps(spec), "draft", parent_id, ts, ts),
            )
            return eid

    def experiment(self, ref: str) -> dict[str, Any]:
        """Find an experiment by id, ``project/name`` or (unique) name."""
        sql = (
            "SELECT e.*, p.name AS project FROM experiments e JOIN projects p ON p.id = e.project_id "
        )
        rows = list(self.db.query(sql + "WHERE e.id = ?", [ref]))
        if not rows and "/" in ref:
            project, _, name = ref.partition("/")
            rows = list(self.db.query(sql + "WHERE p.name = ? AND e.name = ?", [project, name]))
        if not rows:
            rows = list(self.db.query(sql + "WHERE e.name = ?", [ref]))
        if not rows:
            raise NotFoundError(f"no experiment {ref!r}; list them with `promptlooper experiments`")
        if len(rows) > 1:
            options = ", ".join(f"{r['project']}/{r['name']}" for r in rows)
            raise NotFoundError(f"experiment name {ref!r} is ambiguous: use one of {options}")
        row = rows[0]
        row["spec"] = json.loads(row["spec"])
        return row

    def experiments(self, project: str | None = None, include_archived: bool = False) -> list[dict[str, Any]]:
        """Experiments, archived ones (or those of an archived project) only with ``include_archived``."""
        sql = (
            "SELECT e.id, p.name AS project, e.name, e.status, e.parent_id, e.created_at, e.updated_at,"
            " COALESCE(e.archived_at, p.archived_at) AS archived_at,"
            " (SELECT COUNT(*) FROM runs r WHERE r.experiment_id = e.id) AS runs"
            " FROM experiments e JOIN projects p ON p.id = e.project_id WHERE 1"
        )
        if not include_archived:
            sql += " AND e.archived_at IS NULL AND p.archived_at IS NULL"
        if project:
            return list(self.db.query(sql + " AND p.name = ? ORDER BY e.created_at", [project]))
        return list(self.db.query(sql + " ORDER BY p.name, e.created_at"))

    def set_experiment_status(self, experiment_id: str, status: str) -> None:
        with self.cx.write() as c:
            c.execute("UPDATE experiments SET status = ?, updated_at = ? WHERE id = ?", (status, now_iso(), experiment_id))

    # ------------------------------------------------------------------ configurations
    def add_configurations(self, experiment_id: str, configs: Iterable[tuple[str, dict[str, Any], dict[str, Any]]]) -> None:
        ts = now_iso()
        rows = [(experiment_id, cid, dumps(cfg), dumps(varied), ts) for cid, cfg, varied in configs]
        with self.cx.write() as c:
            c.executemany(
                "INSERT OR IGNORE INTO configurations (experiment_id, id, config, varied, created_at) VALUES (?,?,?,?,?)",
                rows,
            )
            # Each configuration belongs to the definition it was planned under (the latest one):
            # a redirect's, a guided search's or an outside driver's configurations included.
            c.executemany(
                "INSERT OR IGNORE INTO definition_configurations (experiment_id, number, config_id)"
                " SELECT experiment_id, MAX(number), ? FROM definitions WHERE experiment_id = ? GROUP BY experiment_id",
                [(r[1], experiment_id) for r in rows],
            )

    def configurations(self, experiment_id: str) -> list[dict[str, Any]]:
        rows = list(self.db.query("SELECT * FROM configurations WHERE experiment_id = ? ORDER BY created_at, id", [experiment_id]))
        for r in rows:
            r["config"] = json.loads(r["config"])
            r["varied"] = json.loads(r["varied"])
        return rows

    def configuration(self, experiment_id: str, config_ref: str) -> dict[str, Any]:
        rows = list(self.db.query(
            "SELECT * FROM configurations WHERE experiment_id = ? AND id LIKE ?", [experiment_id, config_ref + "%"]
        ))
        if len(rows) != 1:
            raise NotFoundError(
                f"configuration {config_ref!r} {'is ambiguous' if rows else 'not found'} in this experiment; "
                "use an id prefix from the leaderboard"
            )
        r = rows[0]
        r["config"] = json.loads(r["config"])
        r["varied"] = json.loads(r["varied"])
        return r

    # ------------------------------------------------------------------ definitions
    def record_definition(self, experiment_id: str, definition_id: str, spec: dict[str, Any], sample_ids: Sequence[str]) -> int:
        """The number of the experiment's current definition: the latest if it has this id, else a new one."""
        with self.cx.write() as c:
            row = c.execute("SELECT number, id FROM definitions WHERE experiment_id = ? ORDER BY number DESC LIMIT 1",
                            (experiment_id,)).fetchone()
            if row and row[1] == definition_id:
                return int(row[0])
            number = (row[0] if row else 0) + 1
            c.execute("INSERT INTO definitions (experiment_id, number, id, spec, sample_ids, created_at) VALUES (?,?,?,?,?,?)",
                      (experiment_id, number, definition_id, dumps(spec), dumps(list(sample_ids)), now_iso()))
            return int(number)

    def definitions(self, experiment_id: str) -> list[dict[str, Any]]:
        """Every definition of the experiment, oldest first, with its sample and configuration counts."""
        rows = list(self.db.query(
            "SELECT d.number, d.id, d.spec, d.sample_ids, d.created_at,"
            " (SELECT COUNT(*) FROM definition_configurations x WHERE x.experiment_id = d.experiment_id AND x.number = d.number)"
            " AS configurations FROM definitions d WHERE d.experiment_id = ? ORDER BY d.number", [experiment_id]))
        for r in rows:
            r["spec"] = json.loads(r["spec"])
            r["samples"] = len(json.loads(r.pop("sample_ids")))
        return rows

    def definition(self, experiment_id: str, number: int | None = None) -> dict[str, Any] | None:
        """A definition (default: the current one) with its ``configurations`` and ``sample_ids`` as
        sets; None for an experiment that has no recorded definition (stored before they were kept)."""
        with self.cx.read() as c:
            sql = "SELECT number, id, spec, sample_ids, created_at FROM definitions WHERE experiment_id = ?"
            if number is None:
                row = c.execute(sql + " ORDER BY number DESC LIMIT 1", (experiment_id,)).fetchone()
            else:
                row = c.execute(sql + " AND number = ?", (experiment_id, number)).fetchone()
            if row is None:
                if number is not None:
                    raise NotFoundError(f"the experiment has no definition {number}; list them with `promptlooper definitions`")
                return None
            configs = {r[0] for r in c.execute(
                "SELECT config_id FROM definition_configurations WHERE experiment_id = ? AND number = ?", (experiment_id, row[0]))}
        return {"number": int(row[0]), "id": row[1], "spec": json.loads(row[2]), "sample_ids": set(json.loads(row[3])),
                "created_at": row[4], "configurations": configs}

    def decide_configuration(self, experiment_id: str, config_id: str, decision: str | None, by: str, reason: str) -> None:
        with self.cx.write() as c:
            cur = c.execute(
                "UPDATE configurations SET decision = ?, decided_by = ?, decision_reason = ?, decided_at = ?"
                " WHERE experiment_id = ? AND id = ?",
                (decision, by, reason, now_iso(), experiment_id, config_id),
            )
            if cur.rowcount == 0:
                raise NotFoundError(f"configuration {config_id} not found")
