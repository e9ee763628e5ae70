#!/usr/bin/env bash
# The front door on a fresh machine (README.md):
#   ops/dev.sh demo   -> venv + install, local stack up, the whole pipeline demo, stack down
#   ops/dev.sh test [unit|integration]
#                     -> venv + install, ruff + mypy, local stack up, the test suite (or one tier), stack down;
#                        the unit tier needs no service and starts none
#   ops/dev.sh lint   -> venv + install, ruff (lint, format) and mypy only
# Extra arguments go to `healthbus demo` or to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
setup() {
  "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "healthbus needs Python >= 3.11")'
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
}

# Debian packages the tests use: headless Chromium (with a CJK font) renders the HTML reports; R's
# surveillance package is the oracle the EARS C1/C2 detection is checked against (~100 MB, 16 s);
# Prometheus (its service is not started: no init system runs here) checks and scrapes the metrics.
ensure_test_packages() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium fonts-wqy-microhei)
  command -v promtool >/dev/null || missing+=(prometheus)  # promtool checks the alert rules; a real scrape
  Rscript -e 'quit(status = !requireNamespace("surveillance", quietly = TRUE))' >/dev/null 2>&1 \
    || missing+=(r-cran-surveillance)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

stack_down() { .venv/bin/healthbus stack down || true; }

# Lint, format and types (configured in pyproject.toml); the same hooks run before each commit
# with pre-commit (.pre-commit-config.yaml).
lint() {
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy
}

cmd=${1:-}
shift || true
case "$cmd" in
  demo)
    setup
    .venv/bin/healthbus stack up
    trap stack_down EXIT
    .venv/bin/healthbus demo "$@"
    ;;
  lint)
    setup
    lint
    ;;
  test)
    setup
    lint
    ensure_test_packages
    if [ "${1:-}" = unit ]; then  # the tier that needs no service: nothing is started
      shift
      exec .venv/bin/python -m pytest -m unit -n auto "$@"  # no shared service: every core (pytest-xdist)
    fi
    if [ "${1:-}" = integration ]; then shift; set -- -m integration "$@"; fi
    .venv/bin/healthbus stack up
    trap stack_down EXIT
    # pytest exits 5 when it collected nothing: that is a failure here, as is any other non-zero exit.
    .venv/bin/python -m pytest --durations=25 "$@"  # the slowest tests in the log: the suite has a 15-minute budget
    ;;
  *)
    echo "usage: ops/dev.sh demo [healthbus demo options] | test [unit|integration] [pytest options] | lint" >&2
    exit 2
    ;;
esac
