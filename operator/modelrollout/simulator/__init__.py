"""A traffic simulator: a stand-in for real model servers, for tests and the demo only.

It is not a model server. It exports, per namespace and revision, the metrics a model server is
expected to export (see README "Metric conventions"), with the behaviour each revision is told to
have: request rate, error ratio, latency, null predictions, missing input features, input drift.
"""
