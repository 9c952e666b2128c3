#!/usr/bin/env bash
# Sourced first by every script: strict mode, the project root as cwd ($root), the install
# and process helpers, and Rust plus nats-server and redis-server present.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/install.sh
source scripts/install.sh
# shellcheck source=scripts/procs.sh
source scripts/procs.sh
ensure_rust
ensure_servers
