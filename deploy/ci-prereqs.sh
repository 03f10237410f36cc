#!/usr/bin/env bash
# Tools the tests need that do not come from pyproject.toml, installed with apt only when missing (idempotent and
# quiet): a compose client to validate docker-compose.yml offline, and poppler-utils (pdftoppm, pdftotext) to
# render the reporting service's PDF reports in their tests.
set -euo pipefail

missing=()
if ! docker compose version >/dev/null 2>&1 && ! docker-compose version >/dev/null 2>&1; then
    missing+=(docker-compose)
fi
if ! command -v pdftoppm >/dev/null 2>&1; then
    missing+=(poppler-utils)
fi
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ci-prereqs: missing ${missing[*]} and no apt-get; install them by hand" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
