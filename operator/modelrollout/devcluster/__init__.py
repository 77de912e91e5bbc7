"""A real Kubernetes control plane on loopback, built from upstream Go modules, for tests and the demo."""
