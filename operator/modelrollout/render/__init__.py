"""Pure renderers: desired Kubernetes objects as dicts, golden-testable."""
