#!/usr/bin/env bash
# Tools the deployment tests need that do not come from pyproject.toml: a compose client to validate
# docker-compose.yml offline. Idempotent and quiet: does nothing when a client already works.
set -euo pipefail

if docker compose version >/dev/null 2>&1 || docker-compose version >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ci-prereqs: no compose client and no apt-get; install docker-compose by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
docker-compose version >/dev/null
