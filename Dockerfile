FROM python:3.11-slim

WORKDIR /srv/usher
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 USHER_ENV=production

COPY pyproject.toml README.md ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system usher
USER usher

EXPOSE 8000
# Set DATABASE_URL, REDIS_URL, USHER_SECRET_KEY, USHER_JWT_SECRET (or a public key), USHER_ACCEPT_URL,
# USHER_SMTP_URL. Run `usher worker` from the same image for the background jobs.
CMD ["usher", "serve", "--host", "0.0.0.0", "--port", "8000"]
