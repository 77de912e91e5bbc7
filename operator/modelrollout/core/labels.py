"""Label and annotation keys the operator puts on what it owns.

Queries, Service selectors and `kubectl get -l` rely on these names; they are API.
"""

from __future__ import annotations

PREFIX = "modelrollout.io/"
DEPLOYMENT_LABEL = PREFIX + "deployment"  # the owning ModelDeployment's name
REVISION_LABEL = PREFIX + "revision"  # hash of template + model
TRACK_LABEL = PREFIX + "track"  # stable | canary | shadow | preview
MODEL_NAME_LABEL = PREFIX + "model-name"
MODEL_VERSION_LABEL = PREFIX + "model-version"
MODEL_URI_ANNOTATION = PREFIX + "model-uri"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "modelrollout"
APP_NAME_LABEL = "app.kubernetes.io/name"
APPLIED_ANNOTATION = PREFIX + "applied"  # hash of what the operator last applied to this object
