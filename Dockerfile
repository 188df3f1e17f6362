# GreenMatrix operator image.
#
#   docker build -t ghcr.io/greenmatrix/greenmatrix:0.1.0 .
#
# The builder turns the source into a wheel (the trained models ship inside it, as package
# greenmatrix.trained) and installs it with its runtime dependencies into a virtualenv; the
# final stage copies only that virtualenv, so no build tools or sources reach the image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY greenmatrix ./greenmatrix
COPY models ./models
COPY operator/greenmatrix_operator ./operator/greenmatrix_operator
RUN pip wheel --no-deps --wheel-dir /dist . \
 && python -m venv /opt/greenmatrix \
 && /opt/greenmatrix/bin/pip install /dist/greenmatrix-*.whl \
 && /opt/greenmatrix/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE}
# Everything the process may write goes to /tmp, which the manifests mount as an emptyDir, so
# the container runs with a read-only root filesystem. Bytecode was compiled at install time.
# XGBoost's OpenMP threads otherwise spin while idle: beside a busy neighbour on two cores a one-minute
# training run took over half an hour here, and in an operator pod they burn CPU between predictions.
ENV PATH=/opt/greenmatrix/bin:$PATH \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    OMP_WAIT_POLICY=PASSIVE
COPY --from=builder /opt/greenmatrix /opt/greenmatrix
# A numeric UID lets Kubernetes verify runAsNonRoot without reading /etc/passwd.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["greenmatrix"]
CMD ["operator"]
