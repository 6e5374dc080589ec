# syntax=docker/dockerfile:1
# The authz server as a small, non-root container image:
#   docker build -t registry.example.com/authz:0.1.0 .
# Kubernetes manifests: deploy/ (docs/kubernetes.md).
#
# The base image is pinned by version. Pin it by digest too when you build: look
# the digest up with `docker buildx imagetools inspect python:3.11.13-slim-bookworm`
# and pass --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:<digest>.
# Both stages use the same image, so the virtualenv's interpreter links stay valid.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# Build: authz and its pinned dependencies into a virtualenv without pip. Every
# dependency comes as a wheel (--only-binary), so no compiler is ever needed.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CONSTRAINT=/src/constraints.txt
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY authz ./authz
RUN python -m venv --without-pip /opt/authz \
 && python -m pip --python /opt/authz/bin/python install --only-binary=:all: . \
 && /opt/authz/bin/authz --version

# Runtime: the base image, a system user and the virtualenv; nothing else.
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 authz \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin authz
COPY --from=build /opt/authz /opt/authz
# Bytecode was compiled at install time; the root filesystem is read-only in Kubernetes.
ENV PATH=/opt/authz/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
# 9191: Check and grpc.health.v1; 9192: the admin API (only with a token or client CA).
EXPOSE 9191 9192
ENTRYPOINT ["authz"]
# In a container the server must listen on every interface (it binds loopback by
# default); the bundle is mounted at /etc/authz/policies.
CMD ["serve", "--policies", "/etc/authz/policies", "--listen", "0.0.0.0:9191"]
