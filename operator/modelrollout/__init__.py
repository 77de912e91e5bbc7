"""modelrollout: a Kubernetes operator that rolls out new versions of ML models safely."""

__version__ = "0.1.0"
