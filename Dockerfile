# rollout-analyzer CLI image.
#   docker build -t rollout-analyzer .
#   docker run --rm --network host rollout-analyzer \
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

RUN useradd --system --create-home --uid 10001 --user-group analyzer
USER 10001:10001

ENTRYPOINT ["analyzer"]
CMD ["--help"]
