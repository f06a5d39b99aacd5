"""The store: the only package that speaks SQL (SQLite today), behind :class:`StoreBackend`."""

from .backend import StoreBackend
from .db import default_path
from .store import CacheEntry, RunRecord, StageRecord, Store, now_iso

__all__ = ["CacheEntry", "RunRecord", "StageRecord", "Store", "StoreBackend", "default_path", "now_iso"]
