#!/usr/bin/env bash
# Build the real Dockerfile and run the image: migrate, turn healthy, serve a request.
#
# No image registry is reachable here, so the Dockerfile's base image is replaced by a local
# stand-in made with debootstrap (Debian bookworm's Python 3.11, as in python:3.11-slim-bookworm)
# and imported under the FROM name. The stand-in carries the machine's CA bundle and pip's
# settings (PIP_CERT, PIP_INDEX_URL when set) as ENV, so pip inside the build reaches the package
# index as it does on this machine; the Dockerfile itself is exactly what users build.
# Containers use the host network (dockerd runs without a bridge): loopback traffic only.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${IMAGE_TAG:-jambo:ci}
PG=${IMAGE_PG:-postgresql://postgres@127.0.0.1:5432}
BASE=$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)
log() { echo "--- image: $*"; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (no bridge, no iptables)"
    nohup dockerd --bridge=none --iptables=false >/tmp/jambo-dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null
fi

if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    # The machine's Debian mirror (deb822 or one-line sources), else Debian's own.
    mirror=$(grep -hsoE '^URIs:\s*\S+/debian/?$' /etc/apt/sources.list.d/*.sources | awk '{ print $2 }' | head -1)
    [ -n "$mirror" ] || mirror=$(grep -hsoE '^deb\s+\S+/debian/?\s+bookworm' /etc/apt/sources.list | awk '{ print $2 }' | head -1)
    mirror=${mirror:-http://deb.debian.org/debian}
    root=$(mktemp -d /tmp/jambo-base.XXXXXX)
    log "stand-in for $BASE: debootstrap bookworm from $mirror"
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$root" "$mirror" >/tmp/jambo-debootstrap.log 2>&1 ||
        { tail -20 /tmp/jambo-debootstrap.log; exit 1; }
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    changes=(--change "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"
             --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    [ -z "${PIP_INDEX_URL:-}" ] || changes+=(--change "ENV PIP_INDEX_URL=$PIP_INDEX_URL")
    tar -C "$root" -c . | docker import "${changes[@]}" - "$BASE" >/dev/null
    rm -rf "$root"
fi

log "building $TAG"
start=$(date +%s)
proxies=()
for name in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
    [ -z "${!name:-}" ] || proxies+=(--build-arg "$name")
done
DOCKER_BUILDKIT=0 docker build --network host "${proxies[@]}" -t "$TAG" . >/tmp/jambo-image-build.log 2>&1 ||
    { tail -30 /tmp/jambo-image-build.log; exit 1; }
size=$(docker image inspect -f '{{.Size}}' "$TAG")
log "built in $(($(date +%s) - start)) s; size $((size / 1000000)) MB; user $(docker image inspect -f '{{.Config.User}}' "$TAG")"

# A throw-away database, a strong secret, the image's own CMD and HEALTHCHECK. On the host
# network the CMD's port 8000 may be taken: then the same command on a free port, with the
# same health check pointed at it.
db="jambo_image_$$"
psql "$PG/postgres" -qc "CREATE DATABASE $db" >/dev/null
name="jambo-image-$$"
cleanup() {
    docker rm -f "$name" >/dev/null 2>&1 || true
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT
port=8000
run=(docker run -d --name "$name" --network host
     -e "DATABASE_URL=${PG/postgresql:/postgresql+asyncpg:}/$db"
     -e "JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')")
if (echo >/dev/tcp/127.0.0.1/8000) 2>/dev/null; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    check="import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=2).status != 200)"
    read -ra cmd < <(docker image inspect -f '{{join .Config.Cmd " "}}' "$TAG")
    run+=(--health-cmd "python -c \"$check\"" --health-interval 15s --health-start-period 20s "$TAG")
    for ((i = 0; i < ${#cmd[@]}; i++)); do
        [ "${cmd[i]}" = "--port" ] && cmd[i + 1]=$port
    done
    run+=("${cmd[@]}")
    log "port 8000 is taken here: serving on $port"
else
    run+=("$TAG")
fi
"${run[@]}" >/dev/null
status=starting
for _ in $(seq 180); do
    status=$(docker inspect -f '{{.State.Health.Status}}' "$name" 2>/dev/null || echo gone)
    [ "$status" = starting ] || break
    sleep 1
done
docker logs "$name" 2>&1 | tail -5
[ "$status" = healthy ] || { log "container is $status"; exit 1; }
log "healthy; runs as uid $(docker exec "$name" id -u)"
revision=$(psql "$PG/$db" -Atc "SELECT version_num FROM alembic_version")
log "migrated to $revision"
ready=$(curl -fsS "http://127.0.0.1:$port/readyz")
token=$(docker exec "$name" jambo token --staff)
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" \
    "http://127.0.0.1:$port/api/v1/customers?pageSize=1")
log "readyz: $ready; GET /api/v1/customers: $code"
[ "$code" = 200 ]
log "ok: image $TAG, $((size / 1000000)) MB"
