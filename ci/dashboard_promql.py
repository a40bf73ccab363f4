"""Check the shape of Grafana dashboards (JSON models) and print their PromQL as a rules file.

`promtool check rules` then parses every expression: the same parser Prometheus runs, and
offline (`promtool query` needs a server). Grafana's variables are replaced by sample values
first; one this script does not know is an error, not a guess. The output is JSON, which
is YAML too.
Usage: python3 ci/dashboard_promql.py deploy/grafana/*.json > exprs.yml
"""

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

# Built-in intervals, and this project's dashboard variables, with values that parse.
SAMPLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "job": "jambo",
    "instance": ".*",
}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
SOURCE = {"type": "prometheus", "uid": "${datasource}"}


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those folded into rows included."""
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def sources(node: Any) -> Iterator[Any]:
    """Every `datasource` value anywhere in the model."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from sources(value)
    elif isinstance(node, list):
        for value in node:
            yield from sources(value)


def substitute(expr: str, where: str) -> str:
    """The expression with each Grafana variable replaced by its sample value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in SAMPLES:
            sys.exit(f"{where}: no sample value for the variable ${name}")
        return SAMPLES[name]

    return VARIABLE.sub(value, expr)


def rules(path: str) -> list[dict[str, str]]:
    """A recording rule per panel query of one dashboard, after checking its shape."""
    with open(path, encoding="utf-8") as f:
        model = json.load(f)  # not well-formed JSON: the traceback says where
    variables = model.get("templating", {}).get("list", [])
    if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables):
        sys.exit(f"{path}: no Prometheus data source variable")
    for source in sources(model):
        if source != SOURCE:  # a uid written in would tie the dashboard to one Grafana
            sys.exit(f"{path}: data source {source!r} is not {SOURCE!r}")
    found = []
    for panel in panels(model.get("panels", [])):
        for target in panel.get("targets", []):
            where = f"{path}: panel {panel.get('title')!r} query {target.get('refId')}"
            if not target.get("expr"):
                sys.exit(f"{where}: no expr")
            found.append(
                {
                    "record": f"dashboard:panel_{panel['id']}_{target['refId']}",
                    "expr": substitute(target["expr"], where),
                }
            )
    if not found:
        sys.exit(f"{path}: no queries")
    return found


def main(paths: list[str]) -> None:
    """Print one rule group per dashboard."""
    groups = [{"name": path, "rules": rules(path)} for path in paths]
    json.dump({"groups": groups}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
