FROM python:3.11-slim

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir .
COPY alembic.ini ./
COPY alembic ./alembic

# Run from /app so `python -m app` uses this tree (alembic.ini sits next to it).
CMD ["python", "-m", "app", "api", "ordering", "--host", "0.0.0.0"]
