# The scoregate gateway with the bundled blue-green example (a scikit-learn model trained at build time).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SCOREGATE_HOME=/var/lib/scoregate

WORKDIR /app

COPY . /app

RUN pip install ".[example]" \
    && python config/examples/blue-green/train.py \
    && useradd --system --create-home --home-dir /var/lib/scoregate scoregate

USER scoregate

# 8080: scoring listener (/score, /metrics, /healthz). 8081: admin API, which stays on the
# container's loopback unless --admin-host is given.
EXPOSE 8080 8081

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

CMD ["scoregate", "serve", "config/examples/blue-green", "--host", "0.0.0.0", "--port", "8080"]
