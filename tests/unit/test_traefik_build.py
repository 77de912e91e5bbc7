"""Traefik's wrapper go.mod and the objects that tie its Gateway to its entry point (no build, no cluster)."""

from pathlib import Path

import pytest

from modelrollout.devcluster.traefik import CONTROLLER_NAME, arguments, gateway_objects, wrapper_gomod

UPSTREAM = """module github.com/traefik/traefik/v3

go 1.25.0

require github.com/gorilla/mux v1.8.1

replace (
\tgithub.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
\tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59 // a fork
)

replace github.com/mailgun/minheap v0.0.1 => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595

// ambiguous import
exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
"""


def test_wrapper_copies_every_replace_and_exclude(tmp_path: Path):
    upstream = tmp_path / "go.mod"
    upstream.write_text(UPSTREAM)
    gomod = wrapper_gomod(upstream, "v3.6.12")
    assert "require github.com/traefik/traefik/v3 v3.6.12" in gomod and "go 1.25.0" in gomod
    assert "\tgithub.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59" in gomod
    assert "\tgithub.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-" in gomod
    assert "\tgithub.com/mailgun/minheap v0.0.1 => github.com/containous/minheap v0.0.0-" in gomod
    assert "\tgithub.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible" in gomod


def test_wrapper_refuses_a_local_path_replace(tmp_path: Path):
    upstream = tmp_path / "go.mod"
    upstream.write_text(UPSTREAM + "\nreplace github.com/x/y => ./y\n")
    with pytest.raises(ValueError, match="local path"):
        wrapper_gomod(upstream, "v3.6.12")


def test_gateway_listener_uses_the_web_entry_point_port(tmp_path: Path):
    flags = arguments(Path("traefik"), 18000, 18001, 18002, "abc", tmp_path)
    assert "--entryPoints.web.address=127.0.0.1:18000" in flags
    assert "--providers.kubernetesGateway.labelSelector=modelrollout.io/traefik=abc" in flags
    _, gateway_class, gateway = gateway_objects("gw", "traefik", "traefik-gw", "abc", 18000)
    assert gateway_class["spec"]["controllerName"] == CONTROLLER_NAME
    assert gateway_class["metadata"]["labels"] == {"modelrollout.io/traefik": "abc"}
    assert [listener["port"] for listener in gateway["spec"]["listeners"]] == [18000]
