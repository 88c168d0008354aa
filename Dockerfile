FROM python:3.11-slim

WORKDIR /srv/usher
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 USHER_ENV=production

# Dependencies first, at the versions of the lock file, in a layer of their own: a change to
# the code does not reinstall them.
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock

COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-deps . && useradd --system --no-create-home --uid 10001 usher
USER 10001

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# Set DATABASE_URL, REDIS_URL, USHER_SECRET_KEY, USHER_JWT_SECRET (or a public key), USHER_ACCEPT_URL,
# USHER_SMTP_URL. Run `usher worker` from the same image for the background jobs; see compose.yaml.
CMD ["usher", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-migrate"]
