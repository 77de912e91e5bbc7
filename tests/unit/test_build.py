from pathlib import Path

from modelrollout.devcluster.build import kubernetes_wrapper_gomod

UPSTREAM = """module k8s.io/kubernetes

go 1.25.0

godebug default=go1.25

require (
\tgithub.com/blang/semver/v4 v4.0.0
\tk8s.io/api v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
)
"""


def test_wrapper_replaces_every_staging_module_with_its_published_version():
    gomod = kubernetes_wrapper_gomod(UPSTREAM, "v1.35.4")
    assert "require k8s.io/kubernetes v1.35.4" in gomod
    assert "\tk8s.io/api => k8s.io/api v0.35.4" in gomod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.35.4" in gomod
    assert "go 1.25.0" in gomod and "godebug default=go1.25" in gomod
    assert "./staging" not in gomod


def test_dev_cluster_build_says_what_each_part_is_and_whether_it_was_built():
    from modelrollout.devcluster.prepare import Prepared

    cached = Prepared("Traefik (data plane)", Path("/cache/bin/traefik-v3.6.12/traefik"), 0.2).line()
    built = Prepared("Traefik (data plane)", Path("/cache/bin/traefik-v3.6.12/traefik"), 421.4).line()
    assert cached.split() == ["Traefik", "(data", "plane)", "cached", "/cache/bin/traefik-v3.6.12/traefik"]
    assert "built in 421s" in built and "Binaries(" not in built


def test_a_cold_build_says_which_part_and_how_long_so_far_while_a_cached_part_says_nothing(monkeypatch, tmp_path):
    import threading

    from modelrollout.devcluster import prepare

    told: list[str] = []
    noticed = threading.Event()

    def say(line: str) -> None:
        told.append(line)
        noticed.set()

    def slow(root: Path) -> Path:
        assert noticed.wait(10), "no progress line while the part was building"
        return root / "slow"

    monkeypatch.setattr(prepare, "FIRST_NOTICE_SECONDS", 0.05)
    monkeypatch.setattr(prepare, "PARTS", (("cached part", lambda root: root / "cached"), ("cold part", slow)))
    ready = list(prepare.prepare_all(tmp_path, say))
    assert [part.name for part in ready] == ["cached part", "cold part"]
    assert told and all(line.startswith("  … cold part: building, ") and line.endswith("s so far") for line in told)


def test_a_part_that_fails_is_named_with_the_tools_own_message_and_no_traceback(monkeypatch, capsys):
    from modelrollout import cli
    from modelrollout.devcluster import prepare

    def broken(root: Path) -> Path:
        raise RuntimeError("go build failed (exit 1); log /cache/build.log:\nmissing go.sum entry")

    monkeypatch.setattr(prepare, "PARTS", (("Traefik (data plane)", broken),))
    assert cli.main(["dev-cluster", "build"]) == 1
    shown = capsys.readouterr()
    assert "modelrollout dev-cluster build: Traefik (data plane) failed after 0s: go build failed" in shown.err
    assert "missing go.sum entry" in shown.err and "Traceback" not in shown.err + shown.out
