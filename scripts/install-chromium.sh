#!/usr/bin/env bash
# Install Debian's Chromium for the browser tests (tests/browser), once; a no-op when it is already there.
# Test tools' own browser downloads (`playwright install`) need the internet, which CI does not have; Debian's
# package comes from the distribution mirror like any other package. Needs root (CI runs as root) or sudo.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_ apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
  $sudo_ apt-get update -q >/dev/null
  $sudo_ apt-get install -y -q --no-install-recommends chromium >/dev/null
}
command -v chromium >/dev/null
echo "install-chromium: $(chromium --version 2>/dev/null)" >&2
