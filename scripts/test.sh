#!/usr/bin/env bash
# The whole test suite. Installs nats-server, redis-server, promtool, openssl and faketime when
# missing, a current nats-server under .tools/ for the cluster test, and nats-py and pyarrow
# under .tools/python for the Python producer's and the Parquet export's tests; the tests start their own servers on free ports and stop them, so nothing
# already running is touched.
# shellcheck source=scripts/prelude.sh
source "$(dirname "${BASH_SOURCE[0]}")/prelude.sh"
ensure_promtool
ensure_openssl
ensure_faketime
ensure_current_nats
ensure_python_packages

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  # nextest runs no doc tests: the client crate's examples are compiled here.
  cargo test --doc --quiet -p candlepipe-client
else
  cargo test --workspace --no-fail-fast "$@"
fi
