"""Pinned upstream versions of every binary and schema the local control plane uses.

One place, so a bump is one reviewed line and the cache directory names follow it.
"""

from __future__ import annotations

KUBERNETES = "v1.35.4"
ETCD = "v3.6.16"
KWOK = "v0.8.0"
GATEWAY_API = "v1.6.3"
ISTIO_API = "v1.31.1"

# Build tags upstream's hack/lib/golang.sh uses for server binaries.
KUBERNETES_BUILD_TAGS = "selinux,notest,grpcnotrace"

# The real data plane and GitOps controller (see ../shared/real-stack.md for why these exact versions).
TRAEFIK = "v3.6.12"
FLUX_SOURCE_CONTROLLER = "v1.9.6"
FLUX_KUSTOMIZE_CONTROLLER = "v1.9.5"
MLSERVER = "1.7.1"
# Upstream Prometheus (module v0.316.0 = Prometheus 3.16.0) for kubernetes_sd_configs: Debian's package is
# built without Kubernetes discovery. Built with only that discovery mechanism (prometheus.py).
PROMETHEUS = "v0.316.0"
