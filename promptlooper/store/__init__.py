"""The store: the only package that speaks SQL (SQLite, or PostgreSQL by URL), behind :class:`StoreBackend`."""

from .backend import StoreBackend
from .db import default_path
from .opening import is_url, open_store, shown_location
from .store import CacheEntry, RunRecord, StageRecord, Store, now_iso

__all__ = ["CacheEntry", "RunRecord", "StageRecord", "Store", "StoreBackend", "default_path", "is_url", "now_iso",
           "open_store", "shown_location"]
