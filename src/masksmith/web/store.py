"""The web app's state in one SQLite file under the data folder: data sets and runs (a run with a model file is
a model). The files themselves (extracted uploads, run folders, results) live beside it in the data folder;
the database only says which is which.

The schema is versioned from the start: `schema_version` holds the number of migrations applied, and
`MIGRATIONS` lists them in order; opening a store applies the missing ones in one transaction each."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

DB_NAME = "masksmith.sqlite"

MIGRATIONS: list[str] = [
    # 1: data sets and training runs
    """
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        root TEXT NOT NULL,          -- what load_dataset reads
        folder TEXT,                 -- our own folder under the data folder (deleted with the data set), or NULL
        source TEXT NOT NULL,        -- upload | folder | sample | split
        format TEXT,
        stats TEXT,                  -- DatasetStats.to_dict() as JSON, and the problems
        colors TEXT NOT NULL DEFAULT '{}',  -- {class: [r, g, b]} the user chose
        created REAL NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        dataset_id INTEGER REFERENCES datasets(id) ON DELETE SET NULL,
        dataset_name TEXT NOT NULL,
        folder TEXT NOT NULL,        -- the run folder
        task TEXT NOT NULL,
        arch TEXT NOT NULL,
        state TEXT NOT NULL,         -- queued | running | stopping | finished | stopped | failed | interrupted
        pid INTEGER,
        error TEXT,
        created REAL NOT NULL,
        started REAL,
        ended REAL
    );
    """,
]

RUN_STATES = ("queued", "running", "stopping", "finished", "stopped", "failed", "interrupted")
ACTIVE = ("queued", "running", "stopping")


class Store:
    """Thread-safe access to the database (one connection, one lock: the app's requests are short)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA journal_mode = WAL")
        self.migrate()

    # -- schema ------------------------------------------------------------------------------------------
    @property
    def version(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT version FROM schema_version").fetchone()
            return int(row[0]) if row else 0

    def migrate(self) -> int:
        """Apply the migrations this database has not seen; returns the schema version."""
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            if self._db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                self._db.execute("INSERT INTO schema_version VALUES (0)")
            done = self.version
            if done > len(MIGRATIONS):
                from masksmith.core.errors import MasksmithError

                raise MasksmithError(f"was written by a newer masksmith (schema {done}, this one knows "
                                     f"{len(MIGRATIONS)}).", path=self.path, fix="upgrade masksmith.")
            for number, sql in enumerate(MIGRATIONS[done:], start=done + 1):
                self._db.execute("BEGIN")
                try:
                    for statement in (s for s in sql.split(";") if s.strip()):
                        self._db.execute(statement)
                    self._db.execute("UPDATE schema_version SET version = ?", (number,))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            return self.version

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- data sets ---------------------------------------------------------------------------------------
    def free_name(self, table: str, name: str) -> str:
        """`name`, or `name (2)`, `name (3)`, ... : the first one not taken in `table`."""
        assert table in ("datasets", "runs")
        candidate, k = name, 2
        with self._lock:
            while self._db.execute(f"SELECT 1 FROM {table} WHERE name = ?", (candidate,)).fetchone():
                candidate, k = f"{name} ({k})", k + 1
        return candidate

    def add_dataset(self, name: str, root: str | Path, folder: str | Path | None, source: str,
                    format: str | None, stats: dict[str, Any]) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO datasets (name, root, folder, source, format, stats, created) VALUES (?,?,?,?,?,?,?)",
                (name, str(root), str(folder) if folder else None, source, format, json.dumps(stats), time.time()))
            return int(cur.lastrowid)

    def datasets(self) -> list[dict[str, Any]]:
        with self._lock:
            return [_dataset(r) for r in self._db.execute("SELECT * FROM datasets ORDER BY created, id")]

    def dataset(self, dataset_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
        return _dataset(row) if row else None

    def update_dataset(self, dataset_id: int, **fields: Any) -> None:
        """Change root, folder, format or stats (a data set turned into a labelling folder, its counts renewed)."""
        allowed = {"root", "folder", "format", "stats"}
        assert set(fields) <= allowed, set(fields) - allowed
        values = [json.dumps(v) if k == "stats" else (str(v) if v is not None else None) for k, v in fields.items()]
        with self._lock:
            self._db.execute(f"UPDATE datasets SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                             (*values, dataset_id))

    def set_colors(self, dataset_id: int, colors: dict[str, list[int]]) -> None:
        with self._lock:
            self._db.execute("UPDATE datasets SET colors = ? WHERE id = ?", (json.dumps(colors), dataset_id))

    def delete_dataset(self, dataset_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM datasets WHERE id = ?", (dataset_id,))

    # -- runs --------------------------------------------------------------------------------------------
    def add_run(self, name: str, dataset: dict[str, Any], folder: str | Path, task: str, arch: str) -> int:
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO runs (name, dataset_id, dataset_name, folder, task, arch, state, created) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (name, dataset["id"], dataset["name"], str(folder), task, arch, "queued", time.time()))
            return int(cur.lastrowid)

    def runs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute("SELECT * FROM runs ORDER BY created DESC, id DESC")]

    def run(self, run_id: int) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return dict(row) if row else None

    def update_run(self, run_id: int, **fields: Any) -> None:
        if not fields:
            return
        unknown = set(fields) - {"state", "pid", "error", "started", "ended"}
        assert not unknown, unknown
        if "state" in fields:
            assert fields["state"] in RUN_STATES, fields["state"]
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._lock:
            self._db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))

    def delete_run(self, run_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def _dataset(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["stats"] = json.loads(d["stats"] or "{}")
    d["colors"] = json.loads(d["colors"] or "{}")
    return d
