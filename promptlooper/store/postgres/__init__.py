"""A PostgreSQL store (``pip install 'promptlooper[postgres]'``): psycopg 3 and its pool.

Importing this package imports psycopg; :func:`promptlooper.store.open_store` imports it only
for a ``postgresql://`` URL, so SQLite users never need the driver.
"""

from .store import PostgresStore

__all__ = ["PostgresStore"]
