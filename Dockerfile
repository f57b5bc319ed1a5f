# syntax=docker/dockerfile:1
#
# One image, three Cloud Run workloads; each sets its own arguments (there is no fixed
# ENTRYPOINT, so the arguments are the whole command):
#   webserver (service):  dagster-webserver -h 0.0.0.0 -p 8080 -w workspace.yaml   (the CMD)
#   daemon (service):     dagster-daemon run -w workspace.yaml
#   run worker (job):     dagster api execute_run <serialized ExecuteRunArgs>
#                         -- passed per run by the CloudRunRunLauncher as container override
#                         args; the job must leave `command` unset.
# The instance is $DAGSTER_HOME/dagster.yaml = deploy/dagster.yaml (Postgres storage, Cloud Run
# run launcher, GCS compute logs); its environment variables are listed in that file.

# Both stages start from one base image, pinned by its (multi-arch index) digest so a rebuild
# cannot pick up a different interpreter or libc; the tag says what the digest is. To move it:
#   docker buildx imagetools inspect python:3.11-slim   (the "Digest:" line), in both FROMs.

# --- build: resolve the venv from the committed lock file --------------------------------
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS build
# uv from PyPI (pinned), not from a registry image: PyPI is the one index CI can reach.
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11
# Dependencies first (cached until pyproject.toml or uv.lock change), then the project.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY event_assets ./event_assets
RUN uv sync --frozen --no-dev --no-editable

# --- final: the venv and the app files only (no uv, no pip install, no compilers) --------
FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS runtime
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /app --shell /usr/sbin/nologin app \
    && install -d -o app -g app /app /app/dagster_home
WORKDIR /app
COPY --from=build /app/.venv /app/.venv
COPY workspace.yaml ./
COPY --chown=app:app deploy/dagster.yaml ./dagster_home/dagster.yaml
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DAGSTER_HOME=/app/dagster_home
USER 10001:10001
EXPOSE 8080
# For `docker run` of the webserver. Cloud Run ignores HEALTHCHECK: its startup/liveness
# probes on /server_info are configured in Terraform. (The daemon and run worker serve no HTTP.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/server_info', timeout=4)"]
CMD ["dagster-webserver", "-h", "0.0.0.0", "-p", "8080", "-w", "workspace.yaml"]
