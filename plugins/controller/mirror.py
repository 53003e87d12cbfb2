"""A crash-safe local copy of what the dbwatcher read from etcd (SQLite, one transaction per write).

SQLite's journal makes every write atomic: after a crash the file holds either the old or the
new content, never a mix. The agent resyncs from it when etcd is unreachable at start.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from core.kvdb.api import KeyValue


class MirrorError(RuntimeError):
    """The mirror file cannot be opened or is not a mirror."""


class LocalMirror:
    """Keys, values and revisions of the watched prefixes, plus the revision of the last snapshot."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
                " mod_revision INTEGER NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER)")
        except (sqlite3.Error, OSError) as exc:
            raise MirrorError(f"cannot open local mirror {self.path}: {exc}") from exc
        self._db = db

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise MirrorError(f"local mirror {self.path} is not open")
        return self._db

    def replace(self, kvs: Iterable[KeyValue], revision: int) -> None:
        """Replace the whole content with a snapshot read at ``revision``, atomically."""
        db = self._conn
        with db:
            db.execute("BEGIN")
            db.execute("DELETE FROM kv")
            db.executemany(
                "INSERT INTO kv (key, value, mod_revision) VALUES (?, ?, ?)",
                ((kv.key, kv.value, kv.mod_revision) for kv in kvs),
            )
            db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('revision', ?)", (revision,))

    def apply(self, key: str, value: bytes | None, revision: int) -> None:
        """Record one change (``value`` None: deleted) seen at ``revision``."""
        db = self._conn
        with db:
            db.execute("BEGIN")
            if value is None:
                db.execute("DELETE FROM kv WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO kv (key, value, mod_revision) VALUES (?, ?, ?)",
                    (key, value, revision),
                )
            db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('revision', MAX(?, "
                "COALESCE((SELECT value FROM meta WHERE name = 'revision'), 0)))",
                (revision,),
            )

    def load(self) -> tuple[list[KeyValue], int]:
        """Everything stored, in key order, and the revision it reflects (0: never written)."""
        db = self._conn
        rows = db.execute("SELECT key, value, mod_revision FROM kv ORDER BY key").fetchall()
        meta = db.execute("SELECT value FROM meta WHERE name = 'revision'").fetchone()
        kvs = [KeyValue(key=k, value=bytes(v), mod_revision=int(r)) for k, v, r in rows]
        return kvs, int(meta[0]) if meta else 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
