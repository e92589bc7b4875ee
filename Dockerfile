FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /opt/risk-monitoring

# Dependencies first, so code changes do not reinstall them. They go into the
# image's own Python (no .venv here, and no cron: the scheduler is a process of
# its own, `python -m monitoring schedule`; see docker-compose.yml).
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --create-home --uid 10001 monitor
COPY --chown=monitor:monitor . .
# The folders the service writes, owned by its user: a named volume mounted on
# models/ starts with this owner (WORKDIR made the project folder root's).
RUN install -d -o monitor -g monitor models data/ingesteddata
USER monitor

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=4)" || exit 1

# The web server: bring the store's schema up to date, make the first deployment
# if there is none (on the shipped sample data), then gunicorn in the foreground.
CMD ["sh", "-c", "python -m monitoring db upgrade && python -m monitoring setup --if-needed && exec gunicorn -c gunicorn.conf.py wsgi:app"]
