#!/usr/bin/env bash
# Tools the tests need that do not come from pyproject.toml, installed with apt only when missing (idempotent,
# quiet):
# - a compose client, to validate docker-compose.yml offline (there is no Docker engine);
# - stress-ng, to load the CPU while proving the suite does not depend on a quiet machine (docs/operations.md, "CI");
# - Debian's Chromium, for the browser test of the sign-in page (driven by Playwright, which downloads no browser);
# - poppler-utils (pdftoppm), to render the generated PDF papers and reports to pictures in their tests.
set -euo pipefail

missing=()
if ! docker compose version >/dev/null 2>&1 && ! docker-compose version >/dev/null 2>&1; then
    missing+=(docker-compose)
fi
if ! command -v stress-ng >/dev/null 2>&1; then
    missing+=(stress-ng)
fi
if [ ! -x /usr/bin/chromium ]; then
    missing+=(chromium)
fi
if ! command -v pdftoppm >/dev/null 2>&1; then
    missing+=(poppler-utils)
fi
if [ ${#missing[@]} -eq 0 ]; then
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
for tool in "${missing[@]}"; do
    case "$tool" in
        docker-compose) docker-compose version >/dev/null ;;
        chromium) /usr/bin/chromium --version >/dev/null ;;
        poppler-utils) pdftoppm -v >/dev/null 2>&1 ;;
    esac
done
