FROM python:3.11-slim

WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

COPY pyproject.toml README.md docker/constraints.txt ./
COPY demo/pyproject.toml ./demo/
COPY app ./app
# The library (cloudcrm-outbox, from app/outbox) and the demo services (cloudcrm-demo, the rest
# of app/), at the versions the tests passed on (`make constraints` writes them from the
# tested venv).
RUN pip install --no-cache-dir -c constraints.txt . ./demo
COPY alembic.ini ./
COPY alembic ./alembic

# Every process runs as an unprivileged user. /definitions is where `broker-accounts`
# writes RabbitMQ's definitions file (a named volume takes this directory's owner).
RUN useradd --system --uid 10001 --no-create-home cloudcrm \
    && mkdir /definitions && chown cloudcrm /definitions
USER cloudcrm

# Run from /app so `python -m app` uses this tree (alembic.ini sits next to it).
CMD ["python", "-m", "app", "api", "ordering", "--host", "0.0.0.0"]
