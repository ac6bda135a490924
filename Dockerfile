# The organizers ran Python 3.12.8. This image installs the project exactly as README.md does
# (constraints file pinning torch 2.13.0: the CUDA build on a GPU host) and runs the dry-run.
FROM python:3.12.8-slim

ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
    PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY evaluator ./evaluator
COPY submission ./submission
COPY data_stub ./data_stub
COPY tests ./tests
COPY benchmarks ./benchmarks
COPY docs ./docs
COPY ci ./ci
COPY .ci ./.ci
RUN pip install -c constraints.txt -e '.[test]'
# Build the stub target once at image build time, so a container's dry-run starts warm.
ENV LUME_HARNESS_CACHE=/app/.cache/lume-harness
RUN unlearn-eval make-target --quiet
CMD ["unlearn-eval", "dry-run", "--out", "runs/dry-run"]
