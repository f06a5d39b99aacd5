"""The SQLite store (the only package that imports sqlite3 or sqlite_utils)."""

from .db import default_path
from .store import CacheEntry, RunRecord, StageRecord, Store, now_iso

__all__ = ["CacheEntry", "RunRecord", "StageRecord", "Store", "default_path", "now_iso"]
