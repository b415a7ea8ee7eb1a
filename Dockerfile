# The Arus app image for the docker-compose path: `arus serve`, `arus relay`, `arus migrate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY functions ./functions
RUN pip install '.[kafka]' \
    && useradd --system --uid 10001 arus
USER arus
EXPOSE 8080
CMD ["arus", "serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
