# The organizers ran Python 3.12.8. This image installs the project exactly as README.md does
# (constraints file pinning torch 2.13.0) and runs the dry-run. PyPI's Linux torch wheel is the CUDA build
# (several GB); on a small or GPU-less machine build with the CPU wheel instead:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t lume-harness .
# Check a packed submission with two mounts, the file and a results folder (README.md, Journey B, "Docker");
# --user and HOME=/tmp leave the results owned by you:
#   mkdir -p results && docker run --rm --user "$(id -u):$(id -g)" -e HOME=/tmp \
#     -v "$PWD/unlearn_submission.py:/submission/unlearn_submission.py:ro" -v "$PWD/results:/results" \
#     lume-harness unlearn-eval dry-run --submission /submission/unlearn_submission.py --out /results/dry-run
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
ARG TORCH_INDEX_URL=""
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install -c constraints.txt --index-url "$TORCH_INDEX_URL" torch; fi \
    && pip install -c constraints.txt -e '.[test]'
# Build the stub target once at image build time, so a container's dry-run starts warm. The cache is left
# writable to every user, so that a container run with --user (results owned by you) can add its before scores.
ENV LUME_HARNESS_CACHE=/app/.cache/lume-harness
RUN unlearn-eval make-target --quiet && chmod -R a+rwX /app/.cache
CMD ["unlearn-eval", "dry-run", "--out", "runs/dry-run"]
