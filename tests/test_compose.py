"""docker-compose.yml cannot run here (no Docker engine on CI), so check what can be checked: the
gateway's environment is a valid configuration, Prometheus scrapes a service that exists, and
Grafana mounts the provisioning and dashboards of config/grafana."""

from __future__ import annotations

from pathlib import Path

import yaml

from gateway.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def test_compose_wires_gateway_simulator_prometheus_grafana_and_traffic() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"db", "gateway", "smsc-sim", "prometheus", "grafana", "traffic"} <= set(services)
    cfg = load_config(None, env=dict(services["gateway"]["environment"]))
    (op,) = cfg.operators
    assert (op.host, op.port) == ("smsc-sim", 2775)
    assert "--port" in services["smsc-sim"]["command"]
    assert cfg.ussd.http_secret_map()["mci"] in services["traffic"]["command"]

    prom = yaml.safe_load((ROOT / "config/prometheus/prometheus.yml").read_text())
    (target,) = prom["scrape_configs"][0]["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services
    assert port == "8040"
    for volume in services["grafana"]["volumes"] + services["prometheus"]["volumes"]:
        local = volume.split(":")[0]
        assert (ROOT / local).is_dir(), volume
    provider = yaml.safe_load(
        (ROOT / "config/grafana/provisioning/dashboards/payam.yml").read_text()
    )
    dash_mount = next(v for v in services["grafana"]["volumes"] if "dashboards:" in v)
    assert provider["providers"][0]["options"]["path"] == dash_mount.split(":")[1]
