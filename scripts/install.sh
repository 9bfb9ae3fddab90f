#!/usr/bin/env bash
# Installs everything labctl needs on a fresh Debian-family machine: the system packages the tests use
# (the mosquitto MQTT broker they start on loopback, tmux for the terminal-session test, Chromium for the
# headless-browser test of the HTML report) and labctl itself,
# editable, with its test extras. The C core is compiled by pip (cffi); no separate build step.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ".[test]"
