#!/usr/bin/env bash
# Deployment checks for CI. `tools`: install what the deployment tests use (PgBouncer, nginx;
# they skip without them). `check`: validate the Kubernetes manifests offline
# (kubernetes-validate ships its schemas), then build and run the image (ci/image.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-check}" in
tools)
    have() { command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ]; }
    if ! have pgbouncer || ! have nginx; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer nginx >/dev/null; } ||
            echo "pgbouncer/nginx could not be installed: their tests will be skipped" >&2
    fi
    ;;
check)
    echo "--- kubernetes manifests"
    .venv/bin/kubernetes-validate --strict $(ls deploy/k8s/*.yaml | grep -v kustomization)
    bash ci/image.sh
    ;;
*)
    echo "usage: ci/deploy.sh tools|check" >&2
    exit 2
    ;;
esac
