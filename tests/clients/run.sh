#!/usr/bin/env bash
# Generated clients against the live service (issue 15), as a frontend team would make them:
#   1. openapi-python-client (throw-away venv) from /openapi.json: no warning, every module
#      imports, and one flow through it (tests/clients/flow.py);
#   2. openapi-typescript types from the same document, and `tsc --strict` over usage.ts
#      (which calls the service through openapi-fetch, typed by them).
# It starts its own `jambo serve` on a free port over a throw-away database (the PostgreSQL
# on 127.0.0.1:5432 when one answers, else an embedded one in a temporary folder).
# Needs network access to PyPI and npm. Usage: tests/clients/run.sh [python-of-the-project]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${1:-${JAMBO_PYTHON:-$ROOT/.venv/bin/python}}
OPC_VERSION=${OPC_VERSION:-0.29.1}
OPENAPI_TS_VERSION=${OPENAPI_TS_VERSION:-7.13.0}
TYPESCRIPT_VERSION=${TYPESCRIPT_VERSION:-5.9.3}
OPENAPI_FETCH_VERSION=${OPENAPI_FETCH_VERSION:-0.17.0}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jambo-clients.XXXXXX")
ORIGIN="http://127.0.0.1:8000"
export PYTHONPATH=$ROOT JAMBO_CLI="$PY -m app.cli"  # the project's code, for its own python
export JWT_SECRET="clients-check-secret-0123456789abcdef0123456789"
export SMTP_HOST="" ALLOWED_ORIGINS=$ORIGIN LOG_LEVEL=WARNING
SERVER_PID="" DB_NAME="" ADMIN_URL=""

cleanup() {
    local status=$?
    set +e
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    if [ -n "$DB_NAME" ]; then
        "$PY" -c 'import asyncio, asyncpg, sys
async def main():
    conn = await asyncpg.connect(sys.argv[1])
    await conn.execute(f"DROP DATABASE IF EXISTS \"{sys.argv[2]}\" WITH (FORCE)")
    await conn.close()
asyncio.run(main())' "$ADMIN_URL" "$DB_NAME" || true
    else
        DATA_DIR="$WORK/data" "$PY" -m app.cli db stop >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

# --- the service, on its own database
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    DB_NAME="jambo_clients_$$"
    ADMIN_URL="postgresql://postgres@127.0.0.1:5432/postgres"
    "$PY" -c 'import asyncio, asyncpg, sys
async def main():
    conn = await asyncpg.connect(sys.argv[1])
    await conn.execute(f"CREATE DATABASE \"{sys.argv[2]}\"")
    await conn.close()
asyncio.run(main())' "$ADMIN_URL" "$DB_NAME"
    export DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:5432/$DB_NAME"
fi
export DATA_DIR="$WORK/data"  # the embedded server (if any) and the kept mail, in this run's folder
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
"$PY" -m app.cli migrate >/dev/null
"$PY" -m app.cli serve --port "$PORT" --no-migrate >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 150); do
    curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.2
done
curl -fsS "$BASE/openapi.json" -o "$WORK/openapi.json"
echo "--- service on $BASE (${DB_NAME:-embedded PostgreSQL})"

# --- Python: openapi-python-client
# The generator's venv sees nothing of the project (its metadata on PYTHONPATH would make
# pip report the project's dependencies as missing).
python3 -m venv "$WORK/venv"
PYTHONPATH= "$WORK/venv/bin/pip" install -qq --disable-pip-version-check \
    "openapi-python-client==$OPC_VERSION"
printf 'post_hooks: []\n' >"$WORK/opc.yaml" # no ruff pass: its absence is itself a warning
(cd "$WORK" && PYTHONPATH= "$WORK/venv/bin/openapi-python-client" generate --path openapi.json \
    --meta none --output-path jambo_client --config opc.yaml) >"$WORK/generate.log" 2>&1 ||
    { cat "$WORK/generate.log"; exit 1; }
if grep -qiE "warning|unable to|could not" "$WORK/generate.log"; then
    cat "$WORK/generate.log"
    echo "openapi-python-client $OPC_VERSION warned about the document" >&2
    exit 1
fi
echo "--- openapi-python-client $OPC_VERSION: no warnings"
PYTHONPATH= "$WORK/venv/bin/python" tests/clients/import_all.py "$WORK" jambo_client
PYTHONPATH= "$WORK/venv/bin/python" tests/clients/flow.py "$BASE" "$WORK" "$ORIGIN"
grep -q "mail not sent" "$WORK/server.log" ||
    { echo "the deletion mail was not noted in the log" >&2; exit 1; }
"$PY" -m app.cli mail -n 1 | grep -q "link: $ORIGIN/api/customer/" ||
    { echo "jambo mail did not show the deletion link" >&2; exit 1; }
echo "deletion link kept for jambo mail (SMTP_HOST unset)"

# --- TypeScript: openapi-typescript + tsc
mkdir -p "$WORK/ts"
cp tests/clients/usage.ts tests/clients/tsconfig.json "$WORK/ts/"
(
    cd "$WORK/ts"
    npm init -y >/dev/null
    npm install --silent --no-audit --no-fund \
        "openapi-typescript@$OPENAPI_TS_VERSION" "typescript@$TYPESCRIPT_VERSION" \
        "openapi-fetch@$OPENAPI_FETCH_VERSION" >/dev/null
    npx openapi-typescript ../openapi.json -o schema.d.ts 2>&1 | tail -1
    npx tsc -p tsconfig.json
)
echo "--- openapi-typescript $OPENAPI_TS_VERSION + openapi-fetch $OPENAPI_FETCH_VERSION" \
    "+ tsc $TYPESCRIPT_VERSION --strict: OK"
