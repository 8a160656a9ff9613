# rollout-analyzer image: by default the controller daemon (`analyzer run`, see deploy/deployment.yaml);
# any other verb of the CLI runs when given as the command.
#   docker build -t rollout-analyzer:0.1.0 .
#   docker run --rm -v ~/.kube:/home/analyzer/.kube:ro rollout-analyzer:0.1.0            # analyzer run
#   docker run --rm --network host rollout-analyzer:0.1.0 \
#     analyze templates/success-rate.yaml --prometheus http://127.0.0.1:9090 --arg canary-version=v2
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the package from the source tree (a regular, non-editable install), then drop the source.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY analyzer ./analyzer
RUN pip install . && rm -rf /src

# The ready-made AnalysisTemplates, so `analyzer lint templates/*.yaml` works inside the image.
WORKDIR /app
COPY templates ./templates
# Named judge policies (provider.judge and analyzer serve look here).
COPY policies ./policies
ENV ANALYZER_POLICIES=/app/policies

RUN useradd --system --create-home --uid 10001 --user-group analyzer
USER 10001:10001

# /healthz, /readyz, /metrics (--listen). SIGTERM finishes the passes in flight and releases the Lease.
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["analyzer"]
CMD ["run"]
