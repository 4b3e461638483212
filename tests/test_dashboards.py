"""The Grafana files in config/grafana are what scripts/build_dashboards.py writes, point at the
provisioned datasource, and read only metrics the gateway exports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import gateway.metrics  # noqa: F401 (registers every metric)
from tests.prometheus_exprs import DASHBOARDS, dashboard_exprs, metric_names, rule_exprs

ROOT = Path(__file__).resolve().parent.parent


def _builder():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "build_dashboards", ROOT / "scripts" / "build_dashboards.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dashboard_files_are_generated_and_current() -> None:
    rendered = _builder().render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in DASHBOARDS.glob("*.json")}
    assert rendered == on_disk, "run: python scripts/build_dashboards.py"
    assert set(on_disk) == {
        "overview.json", "agencies.json", "operators.json", "ussd.json", "ebox.json",
        "callbacks.json", "app.json",
    }  # fmt: skip


def test_every_panel_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load(
        (ROOT / "config/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    uids = set()
    for path in DASHBOARDS.glob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        uids.add(doc["uid"])
        for panel in doc["panels"]:
            assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
    assert len(uids) == len(list(DASHBOARDS.glob("*.json")))


def test_every_metric_read_is_exported_by_the_gateway() -> None:
    exported = {m.name for m in REGISTRY.collect()}
    # prometheus-client names counter families without _total.
    families = exported | {f"{n}_total" for n in exported}
    used: set[str] = set()
    for e in dashboard_exprs():
        used |= metric_names(e.expr)
    for expr in rule_exprs().values():
        used |= metric_names(expr)
    assert used - families == set()
