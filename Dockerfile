FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends dovecot-core gnupg openssh-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway gateway
COPY hosts hosts
COPY zones zones
COPY keys keys
RUN pip install --no-cache-dir .
COPY . .
USER nobody
