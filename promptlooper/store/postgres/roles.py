"""A read-only database role for dashboards (and anyone who should look, not touch).

``Workbench(url, readonly=True)`` already opens every session read-only, but that is the
client's promise; a dashboard shared with a team should connect as a role the *server* refuses
writes to. :func:`create_reader_role` makes one on the store's database: it may connect and
``SELECT`` every table, including tables later migrations add (default privileges of the
role that owns the schema, i.e. the one running this), and its sessions start read-only.
"""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def create_reader_role(url: str, role: str, password: str | None = None) -> str:
    """Create (or refresh the grants of) ``role`` on the database of ``url``, connecting as ``url``'s
    user (the store's owner); returns a URL that connects as the reader. Run it again after
    upgrading if the store was migrated by another user."""
    name = sql.Identifier(role)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        secret = sql.SQL(" PASSWORD {}").format(sql.Literal(password)) if password else sql.SQL("")
        conn.execute(sql.SQL("ALTER ROLE {} LOGIN" if exists else "CREATE ROLE {} LOGIN").format(name) + secret)
        database = sql.Identifier(conn.info.dbname)
        for statement in (
            "GRANT CONNECT ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}",
            "ALTER ROLE {role} IN DATABASE {db} SET default_transaction_read_only = on",
        ):
            conn.execute(sql.SQL(statement).format(db=database, role=name))
    params = {**conninfo_to_dict(url), "user": role}
    params.pop("password", None)
    if password:
        params["password"] = password
    return _as_url(make_conninfo(**params))


def may_write(url: str) -> bool:
    """Whether the role ``url`` connects as may change the store's rows (the owner, any writer),
    which a dashboard's URL should not: its read-only sessions are then the client's promise only."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT bool_or(has_table_privilege(c.oid, 'INSERT') OR has_table_privilege(c.oid, 'UPDATE')"
                           " OR has_table_privilege(c.oid, 'DELETE')) FROM pg_class c"
                           " WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace").fetchone()
    return bool(row and row[0])


def _as_url(conninfo: str) -> str:
    """A libpq key=value string as a postgresql:// URL (what --db and DATABASE_URL take)."""
    p = conninfo_to_dict(conninfo)
    auth = p.get("user", "") + (f":{p['password']}" if p.get("password") else "")
    host = p.get("host", "localhost") + (f":{p['port']}" if p.get("port") else "")
    return f"postgresql://{auth}@{host}/{p.get('dbname', '')}"


__all__ = ["create_reader_role", "may_write"]
