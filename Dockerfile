# PromptLooper in one image: JupyterLab (token required), the read-only Voila dashboard and the
# MCP server over HTTP, data under /data, the embedded model included so it works offline.
# The steps are the README's install command, so the image and a fresh machine install alike.
FROM python:3.11-slim-bookworm

RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake git \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/promptlooper
COPY . .
# Same command as the README (compiles llama.cpp for the embedded model, about 7 minutes).
RUN scripts/install.sh

ENV PATH="/opt/promptlooper/.venv/bin:${PATH}" \
    DATA_DIR=/data \
    PROMPTLOOPER_DB=/data/promptlooper.db \
    PORT=8400 \
    MCP_PORT=8401 \
    DASHBOARD_PORT=8402 \
    HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8400 8401 8402
ENTRYPOINT ["scripts/entrypoint.sh"]
