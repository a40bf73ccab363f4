#!/usr/bin/env bash
# Alert rules and dashboards: the rules load, each rule's unit tests pass, and every PromQL
# expression of the Grafana dashboards parses (promtool: Debian's `prometheus` package).
set -euo pipefail
cd "$(dirname "$0")/.."

promtool check rules deploy/prometheus/*.yml
promtool test rules deploy/prometheus/tests/*.yml

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PYTHON:-python3}" ci/dashboard_promql.py deploy/grafana/*.json >"$work/dashboards.yml"
promtool check rules "$work/dashboards.yml"
