"""Real model servers for kwok pods: MLServer installed in its own cached venv, real scikit-learn
models, a custom runtime with the demo behaviours, a harness that serves each gated pod on its IP,
and a load generator. Local tooling only: the operator never imports it.
"""
