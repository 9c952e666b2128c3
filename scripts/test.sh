#!/usr/bin/env bash
# The whole test suite. Installs nats-server and redis-server when missing; the tests start
# their own servers on free ports and stop them, so nothing already running is touched.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/install.sh
source scripts/install.sh
ensure_rust
ensure_servers
ensure_promtool

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
