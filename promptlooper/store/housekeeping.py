"""The store's housekeeping queries: delete and archive experiments and projects, project notes.

Part of :class:`~promptlooper.store.Store`. Deleting is refused while a live process sweeps
the experiment (a sweep ``running`` or ``paused`` whose owner is alive, as the lease in
``begin_sweep`` decides): its writer would go on inserting runs of an experiment that no longer
exists. The check and the delete are one write transaction, so no sweep can start in between.
Deleting removes the experiment's configurations, runs, stage results, scores, sweeps,
definitions, told values and events; the response cache is shared by content and stays.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from ..errors import NotFoundError, SweepConflictError
from .batchwriter import now_iso
from .db import Queries
from .in_lists import marks
from .liveness import owner_alive

LIVE_STALE_AFTER = 10.0  # seconds without a heartbeat after which another host's sweep is dead


class Housekeeping(Queries):
    """Deleting and archiving experiments and projects; project notes."""

    # ------------------------------------------------------------------ live sweeps
    def live_sweeps(self, experiment_ids: list[str], c: Any = None) -> list[dict[str, Any]]:
        """Sweeps of these experiments that a live process runs or holds paused."""
        if not experiment_ids:
            return []
        placeholders = marks(len(experiment_ids))
        sql = (f"SELECT s.id, s.status, s.owner_pid, s.owner_host, s.heartbeat, p.name || '/' || e.name AS experiment "
               f"FROM sweeps s JOIN experiments e ON e.id = s.experiment_id JOIN projects p ON p.id = e.project_id "
               f"WHERE s.experiment_id IN ({placeholders}) AND s.status IN ('running', 'paused')")
        if c is None:
            with self.cx.read() as r:
                rows = r.execute(sql, experiment_ids).fetchall()
        else:
            rows = c.execute(sql, experiment_ids).fetchall()
        host = socket.gethostname()

        def live(pid: int | None, owner_host: str | None, beat: float | None) -> bool:
            if pid == os.getpid() and owner_host == host:  # this process's own sweep: alive while it beats
                return beat is not None and time.time() - beat < LIVE_STALE_AFTER
            return owner_alive(pid, owner_host, beat, host, LIVE_STALE_AFTER)

        return [{"id": r[0], "status": r[1], "pid": r[2], "host": r[3], "experiment": r[5]} for r in rows if live(r[2], r[3], r[4])]

    def _refuse_live(self, c: Any, experiment_ids: list[str], what: str) -> None:
        live = self.live_sweeps(experiment_ids, c)
        if live:
            s = live[0]
            raise SweepConflictError(
                f"cannot {what}: {s['experiment']} has a {s['status']} sweep ({s['id'][:8]}, pid {s['pid']} on {s['host']}); "
                f"stop it first (`promptlooper stop {s['experiment']}`) and try again")

    # ------------------------------------------------------------------ experiments
    def delete_experiment(self, experiment_id: str) -> dict[str, int]:
        """Delete an experiment and everything recorded of it; SweepConflictError while it is swept."""
        with self.cx.write() as c:
            self._refuse_live(c, [experiment_id], "delete it")
            return self._delete_experiments(c, [experiment_id])

    @staticmethod
    def _delete_experiments(c: Any, ids: list[str]) -> dict[str, int]:
        placeholders = marks(len(ids))
        counts = {"experiments": len(ids),
                  "runs": c.execute(f"SELECT COUNT(*) FROM runs WHERE experiment_id IN ({placeholders})", ids).fetchone()[0]}
        # Tables without a cascading key first; the rest follows the experiments' rows (foreign keys are on).
        c.execute(f"DELETE FROM events WHERE experiment_id IN ({placeholders})", ids)
        c.execute(f"DELETE FROM told_values WHERE experiment_id IN ({placeholders})", ids)
        c.execute(f"DELETE FROM scores WHERE run_id IN (SELECT id FROM runs WHERE experiment_id IN ({placeholders}))", ids)
        c.execute(f"DELETE FROM stage_results WHERE run_id IN (SELECT id FROM runs WHERE experiment_id IN ({placeholders}))", ids)
        for table in ("runs", "configurations", "sweeps", "definition_configurations", "definitions"):
            c.execute(f"DELETE FROM {table} WHERE experiment_id IN ({placeholders})", ids)  # noqa: S608 - fixed names
        c.execute(f"UPDATE experiments SET parent_id = NULL WHERE parent_id IN ({placeholders})", ids)  # forks stay
        c.execute(f"DELETE FROM experiments WHERE id IN ({placeholders})", ids)
        return counts

    def set_experiment_archived(self, experiment_id: str, archived: bool) -> None:
        with self.cx.write() as c:
            if archived:
                self._refuse_live(c, [experiment_id], "archive it")
            c.execute("UPDATE experiments SET archived_at = ? WHERE id = ?", (now_iso() if archived else None, experiment_id))

    def set_experiment_folder(self, experiment_id: str, folder: str | None) -> None:
        """Where the experiment's file is (its relative sample, template and module paths start there)."""
        with self.cx.write() as c:
            c.execute("UPDATE experiments SET folder = ? WHERE id = ?", (folder, experiment_id))

    # ------------------------------------------------------------------ projects
    def project(self, name: str) -> dict[str, Any]:
        rows = list(self.db.query("SELECT * FROM projects WHERE name = ?", [name]))
        if not rows:
            known = ", ".join(r["name"] for r in self.db.query("SELECT name FROM projects ORDER BY name")) or "none"
            raise NotFoundError(f"no project {name!r} (projects: {known}); list them with `promptlooper projects`")
        return rows[0]

    def project_list(self, include_archived: bool = False) -> list[dict[str, Any]]:
        sql = ("SELECT p.name, p.description, p.archived_at, p.created_at, p.id,"
               " (SELECT COUNT(*) FROM experiments e WHERE e.project_id = p.id) AS experiments,"
               " (SELECT COUNT(*) FROM project_notes n WHERE n.project_id = p.id) AS notes FROM projects p")
        return list(self.db.query(sql + ("" if include_archived else " WHERE p.archived_at IS NULL") + " ORDER BY p.name"))

    def delete_project(self, name: str) -> dict[str, int]:
        """Delete a project, its experiments (refused while one is swept) and its notes."""
        pid = self.project(name)["id"]
        with self.cx.write() as c:
            ids = [r[0] for r in c.execute("SELECT id FROM experiments WHERE project_id = ?", (pid,)).fetchall()]
            self._refuse_live(c, ids, f"delete project {name!r}")
            counts = self._delete_experiments(c, ids) if ids else {"experiments": 0, "runs": 0}
            counts["notes"] = c.execute("DELETE FROM project_notes WHERE project_id = ?", (pid,)).rowcount
            c.execute("DELETE FROM projects WHERE id = ?", (pid,))
            return counts

    def set_project_archived(self, name: str, archived: bool) -> None:
        pid = self.project(name)["id"]
        with self.cx.write() as c:
            if archived:
                ids = [r[0] for r in c.execute("SELECT id FROM experiments WHERE project_id = ?", (pid,)).fetchall()]
                self._refuse_live(c, ids, f"archive project {name!r}")
            c.execute("UPDATE projects SET archived_at = ? WHERE id = ?", (now_iso() if archived else None, pid))

    # ------------------------------------------------------------------ notes
    def add_note(self, project_id: str, text: str, by: str = "") -> int:
        with self.cx.write() as c:
            cur = c.execute("INSERT INTO project_notes (project_id, text, by, created_at) VALUES (?,?,?,?)",
                            (project_id, text, by, now_iso()))
            return int(cur.lastrowid)

    def notes(self, project_id: str) -> list[dict[str, Any]]:
        return list(self.db.query("SELECT id, text, by, created_at FROM project_notes WHERE project_id = ? ORDER BY id",
                                  [project_id]))
