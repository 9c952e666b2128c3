#!/usr/bin/env bash
# The whole test suite. Installs nats-server, redis-server, promtool, openssl and faketime when
# missing, a current nats-server under .tools/ for the cluster test, nats-py, pyarrow,
# binance-connector, ccxt and playwright under .tools/python and chromium for the Python
# producer's, the Parquet export's and the gateway's tests; the tests start their own
# servers on free ports and stop them, so nothing already running is touched.
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
ensure_promtool
ensure_openssl
ensure_faketime
ensure_current_nats
ensure_python_packages
ensure_chromium
# The gateway's tests open a thousand HTTP connections at once: more descriptors than
# Debian's default soft limit of 1,024, within the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 8192 2>/dev/null || true

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  # nextest runs no doc tests: the client crate's examples are compiled here.
  cargo test --doc --quiet -p candlepipe-client
else
  cargo test --workspace --no-fail-fast "$@"
fi
