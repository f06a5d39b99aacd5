# PromptLooper in one image: JupyterLab (token required), the read-only Voila dashboard and the
# MCP server over HTTP, data under /data, the embedded model included so it works offline.
# The steps are the README's install command, so the image and a fresh machine install alike.
# Alone it serves a SQLite file under /data (scripts/entrypoint.sh); docker-compose.yml runs the
# same image as a team's services on PostgreSQL (DATABASE_URL), with workers.
FROM python:3.11-slim-bookworm

RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/promptlooper
COPY . .
# Same command as the README (compiles llama.cpp for the embedded model, about 7 minutes).
RUN scripts/install.sh
# The PostgreSQL driver (DATABASE_URL=postgresql://…), from the project's own extras.
RUN .venv/bin/python -m pip install -q -e ".[postgres]"

ENV PATH="/opt/promptlooper/.venv/bin:${PATH}" \
    DATA_DIR=/data \
    PORT=8400 \
    MCP_PORT=8401 \
    DASHBOARD_PORT=8402 \
    HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8400 8401 8402
# No PROMPTLOOPER_DB here: it would outrank DATABASE_URL in every process; the entrypoint defaults it.
ENTRYPOINT ["scripts/entrypoint.sh"]
