"""Every PromQL expression the operators look at: dashboard targets, variable queries and alert
rules, read from config/grafana/dashboards/*.json and config/prometheus/rules/*.yml."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "config" / "grafana" / "dashboards"
RULES = ROOT / "config" / "prometheus" / "rules"
_LABEL_VALUES = re.compile(r"^label_values\((\w+),\s*(\w+)\)$")
METRIC = re.compile(r"\b(payam_[a-z][a-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class Expr:
    source: str  # "overview.json: Queue depth per lane" or "rule PayamSmppBindDown"
    expr: str


def grafana_to_promql(expr: str, rate_interval: str = "30s", range_: str = "5m") -> str:
    """Grafana's built-in variables as Grafana itself would expand them (all agencies etc.)."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("$__range", range_)
        .replace('"$agency"', '".*"')
        .replace('"$operator"', '".*"')
    )


def dashboard_exprs() -> list[Expr]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for panel in doc["panels"]:
            for target in panel["targets"]:
                found.append(
                    Expr(
                        f"{path.name}: {panel['title']} [{target['legendFormat']}]",
                        grafana_to_promql(target["expr"]),
                    )
                )
        for var in doc["templating"]["list"]:
            m = _LABEL_VALUES.match(var["query"]["query"])
            assert m, f"{path.name}: variable {var['name']} is not label_values(metric, label)"
            found.append(
                Expr(f"{path.name}: variable {var['name']}", f"count by ({m[2]}) ({m[1]})")
            )
    return found


def rule_exprs() -> dict[str, str]:
    rules: dict[str, str] = {}
    for path in sorted(RULES.glob("*.yml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            for rule in group["rules"]:
                rules[rule.get("alert") or rule["record"]] = rule["expr"].strip()
    return rules


def metric_names(expr: str) -> set[str]:
    """Metric families an expression reads (histogram series names folded to the family)."""
    names = set()
    for name in METRIC.findall(expr):
        for suffix in ("_bucket", "_count", "_sum"):
            if name.endswith(suffix) and not name.endswith("_total"):
                name = name.removesuffix(suffix)
        names.add(name)
    return names
