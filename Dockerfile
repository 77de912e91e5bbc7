# The operator image: kubectl/kopf runtime only, non-root, read-only root filesystem friendly.
#
# The operator is installed into a virtualenv at /opt/modelrollout, built in the first stage and copied to
# the same path in the second. Why a venv rather than `pip install --prefix`: the same Dockerfile must work
# on the official python:3.11-slim (Python in /usr/local) and on a plain Debian base with Debian's python3
# (which `modelrollout dev-cluster build` makes with mmdebstrap, so no registry is needed). Debian's python
# refuses `pip install` into the system (PEP 668, "externally-managed-environment"), and its sysconfig puts
# a `--prefix` install under <prefix>/local/, so `COPY --from=build /install /usr/local` would land in
# /usr/local/local/ and the package would not be importable. A venv is self-contained on both: its
# interpreter links to the base's python3, which is the same file in both stages. pip and setuptools are
# removed from it afterwards: the operator needs neither at run time.
FROM python:3.11-slim AS build
RUN python3 -m venv /opt/modelrollout
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/modelrollout/bin/pip install --no-cache-dir --disable-pip-version-check . \
 && /opt/modelrollout/bin/pip uninstall --yes pip setuptools

FROM python:3.11-slim
COPY --from=build /opt/modelrollout /opt/modelrollout
USER 65532:65532
ENV PATH=/opt/modelrollout/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["modelrollout"]
CMD ["run"]
