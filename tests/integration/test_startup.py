"""A normal start against a fresh cluster is quiet: no ERROR line, and the operator serves at once.

Right after the CRDs are installed the apiserver answers their lists with 429 "storage is
(re)initializing" for a moment; kopf logged that at ERROR before the operator waited for it.
"""

from __future__ import annotations

import json

from modelrollout.devcluster import build, cluster, state
from modelrollout.devcluster.stack import operator_process
from tests.integration.conftest import wait_for
from tests.integration.helpers import sample


def test_a_start_right_after_the_crds_are_installed_logs_no_error(tmp_path):
    running = cluster.start(workdir=tmp_path / "cluster", binaries=build.ensure_binaries())
    try:
        state.install_crds(running, routers=False)
        log = tmp_path / "operator.log"
        with operator_process(running.kubeconfig, log, {"MODELROLLOUT_HTTP_ADDRESS": "off"}):
            running.kubectl("create", "namespace", "quiet")
            body = sample(replicas=1)
            running.kubectl("apply", "-n", "quiet", "-f", "-", input=json.dumps(body))

            def healthy() -> bool:
                phase = running.kubectl("get", "md", "fraud-scorer", "-n", "quiet", "-o", "jsonpath={.status.phase}")
                return phase.stdout == "Healthy"

            wait_for(healthy, timeout=90, what="the first ModelDeployment Healthy")
        lines = log.read_text().splitlines()
        assert [line for line in lines if " ERROR " in line or "Traceback" in line] == []
        assert any("Activity 'operator_startup' succeeded" in line for line in lines)
    finally:
        running.stop()
