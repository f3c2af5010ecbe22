# syntax=docker/dockerfile:1
# The ibet image: every stage, the push API, the console and the CLI (`ibet ...` is the entrypoint).
#
#   docker build -t ibet .                                  CPU image (detect on CPU, every other stage)
#   docker build --build-arg VARIANT=gpu -t ibet-gpu .      GPU image for detect on nvidia.com/gpu nodes (checks
#                                                           that its torch is a CUDA build)
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t ibet .
#                                                           CPU image with CPU-only PyTorch (GBs smaller)
#
# PyTorch comes with Ultralytics from PyPI. On Linux x86_64 PyPI's torch wheel is the CUDA build and
# brings NVIDIA's CUDA libraries as pip packages, so the same install serves the GPU image; the
# host needs only the NVIDIA driver and container toolkit (Kubernetes: the NVIDIA device plugin).
# The CPU-only wheels live on PyTorch's own index (TORCH_INDEX_URL), which the project's build
# machines cannot reach, so the default build does not use it.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ARG TORCH_INDEX_URL=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ibet
WORKDIR /src
# torch first (from TORCH_INDEX_URL when given), so the project's install finds it satisfied
RUN if [ -n "$TORCH_INDEX_URL" ]; then /opt/ibet/bin/pip install --index-url "$TORCH_INDEX_URL" torch torchvision; fi
COPY pyproject.toml README.md LICENSE ./
COPY ibet ./ibet
COPY ibet_app ./ibet_app
COPY ingest ./ingest
COPY detect ./detect
COPY fuse ./fuse
COPY alerts ./alerts
COPY console ./console
COPY sim ./sim
COPY models ./models
RUN /opt/ibet/bin/pip install . && /opt/ibet/bin/ibet version
# The GPU image must hold a CUDA build of PyTorch (the default from PyPI is one; a CPU index is not).
RUN if [ "$VARIANT" = gpu ]; then /opt/ibet/bin/python -c "import torch, sys; sys.exit(0 if torch.version.cuda else 'VARIANT=gpu needs a CUDA build of torch: leave TORCH_INDEX_URL empty or name a CUDA index')"; fi

FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
# OpenCV (opencv-python) needs libGL and GLib at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 srt-tools \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 ibet \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin ibet
COPY --from=build /opt/ibet /opt/ibet
WORKDIR /app
# The shipped model and its registry (models/registry.yaml), and the example configuration; on
# Kubernetes the configuration is mounted at /etc/ibet instead.
COPY --chown=root:root models/registry.yaml models/*.pt ./models/
COPY --chown=root:root config ./config
ENV PATH=/opt/ibet/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    YOLO_CONFIG_DIR=/tmp/ultralytics \
    MPLCONFIGDIR=/tmp/matplotlib \
    IBET_IMAGE_VARIANT=${VARIANT}
LABEL org.opencontainers.image.title="ibet" org.opencontainers.image.licenses="AGPL-3.0-or-later" \
      org.ibet.variant=${VARIANT}
# Numeric, so Kubernetes' runAsNonRoot can check it; the root filesystem can be read-only (writes go
# to /tmp and the evidence volume).
USER 10001:10001
EXPOSE 8080 9400
# For plain Docker/Compose: every long-running ibet process serves /metrics on 9400. Kubernetes
# uses the Deployments' probes instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('IBET_HEALTHCHECK_URL', 'http://127.0.0.1:9400/metrics'), timeout=4)"]
ENTRYPOINT ["ibet"]
CMD ["--help"]
