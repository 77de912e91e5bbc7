"""`cluster.start(extra_apiserver_flags=...)` reaches kube-apiserver: a benchmark can turn on an audit log
without patching the local control plane."""

from __future__ import annotations

import json
import secrets
import time

from modelrollout.devcluster import cluster

# Metadata for ConfigMaps only, nothing else: the log holds just what the test asks about.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources: [{group: "", resources: [configmaps]}]
  - level: None
"""


def test_an_audit_log_turned_on_by_extra_apiserver_flags_records_a_request(tmp_path):
    policy, audit_log = tmp_path / "audit-policy.yaml", tmp_path / "audit.log"
    policy.write_text(AUDIT_POLICY)
    flags = (f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}")
    name = f"audited-{secrets.token_hex(4)}"
    with cluster.start(workdir=tmp_path / "cluster", nodes=1, extra_apiserver_flags=flags) as running:
        assert [flag for flag in running.process("kube-apiserver").args if flag in flags] == list(flags)
        running.kubectl_retrying("create", "configmap", name, "-n", "default", "--from-literal=k=v")

        def entries() -> list[dict]:
            lines = audit_log.read_text().splitlines() if audit_log.exists() else []
            events = [json.loads(line) for line in lines]
            return [event for event in events if event.get("objectRef", {}).get("name") == name]

        deadline = time.monotonic() + 30
        while not entries():
            assert time.monotonic() < deadline, f"no audit event for configmap {name} in {audit_log} after 30s"
            time.sleep(0.2)
        (event,) = entries()
    assert (event["verb"], event["stage"], event["user"]["username"]) == ("create", "ResponseComplete", "admin")
    assert event["objectRef"]["resource"] == "configmaps"
    assert event["responseStatus"]["code"] == 201
    assert event["level"] == "Metadata"
