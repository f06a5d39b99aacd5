#!/usr/bin/env bash
# Start JupyterLab (token required), the read-only Voila dashboard and the MCP server over HTTP,
# all on one database: $PROMPTLOOPER_DB, else $DATABASE_URL, else a SQLite file under $DATA_DIR.
# Used by the Docker image; runs the same outside Docker.
#   JUPYTER_TOKEN          JupyterLab's token (generated and printed once if unset)
#   PROMPTLOOPER_MCP_KEY   the MCP server's bearer key (generated and printed once if unset)
#   PROMPTLOOPER_DASHBOARD_TOKEN  the dashboards' token (generated and printed once if unset,
#                          since they listen on $HOST); PROMPTLOOPER_DASHBOARD_GUEST=1 opens them
#                          to anyone who reaches the port, read-only, instead
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${PROMPTLOOPER_BIN:-$here/.venv/bin}"
DATA_DIR="${DATA_DIR:-/data}"
HOST="${HOST:-0.0.0.0}"
PORT="${PORT:-8400}"
MCP_PORT="${MCP_PORT:-8401}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8402}"
export PROMPTLOOPER_DB="${PROMPTLOOPER_DB:-${DATABASE_URL:-$DATA_DIR/promptlooper.db}}"
mkdir -p "$DATA_DIR/notebooks"
# Jupyter writes state under $HOME; keep it with the data, not in the image.
export JUPYTER_CONFIG_DIR="$DATA_DIR/.jupyter" JUPYTER_DATA_DIR="$DATA_DIR/.local/share/jupyter" \
       JUPYTER_RUNTIME_DIR="$DATA_DIR/.jupyter/runtime" IPYTHONDIR="$DATA_DIR/.ipython"
cp -n "$here"/notebooks/*.ipynb "$DATA_DIR/notebooks/" 2>/dev/null || true

if [ -z "${JUPYTER_TOKEN:-}" ]; then
  JUPYTER_TOKEN="$("$bin/python" -c 'import secrets; print(secrets.token_urlsafe(24))')"
  echo "JupyterLab token (shown once): $JUPYTER_TOKEN" >&2
fi
export JUPYTER_TOKEN

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$bin/jupyter" lab --no-browser --allow-root --ip="$HOST" --port="$PORT" --ServerApp.port_retries=0 \
    --ServerApp.root_dir="$DATA_DIR/notebooks" --IdentityProvider.token="$JUPYTER_TOKEN" &
pids+=($!)
guest=()
[ "${PROMPTLOOPER_DASHBOARD_GUEST:-}" = 1 ] && guest=(--guest)
"$bin/promptlooper" --db "$PROMPTLOOPER_DB" dashboard --host "$HOST" --port "$DASHBOARD_PORT" "${guest[@]}" &
pids+=($!)
"$bin/promptlooper" --db "$PROMPTLOOPER_DB" mcp --transport http --host "$HOST" --port "$MCP_PORT" &
pids+=($!)
wait -n "${pids[@]}"
