# Payam Iran gateway. Multi-stage: build wheels with a compiler, run on a slim base as non-root.
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY adapters ./adapters
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app payam
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/payam.example.toml /app/config/payam.example.toml
USER payam
ENV PAYAM_HTTP_HOST=0.0.0.0 \
    PAYAM_HTTP_PORT=8040 \
    PAYAM_LOG_JSON=true \
    PAYAM_SECURITY_MASTER_KEY_FILE=/run/secrets/payam_master_key \
    PAYAM_SECURITY_AUDIT_SIGNING_KEY_FILE=/run/secrets/payam_audit_signing_key \
    PAYAM_KARTPOOSHE_EVIDENCE_KEY_FILE=/run/secrets/payam_evidence_key
EXPOSE 8040
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8040/healthz', timeout=2).status != 200)"
# Apply migrations, then serve. PAYAM_DATABASE_URL must be set: the image has no embedded database.
CMD ["sh", "-c", "payam migrate && exec payam serve"]
