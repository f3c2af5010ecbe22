#!/usr/bin/env bash
# Sets up the console's browser tests: Debian's Chromium (driven headless by Playwright through
# executable_path; Playwright never downloads a browser) and the Python playwright package in
# .venv. Safe to run again: it skips what is already there. Called by scripts/setup.sh --test.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup-browser]\033[0m %s\n' "$*"; }

if [[ ! -x /usr/bin/chromium ]]; then
  say "installing Debian's chromium"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends chromium
fi
/usr/bin/chromium --version

# The Python driver only (its bundled node driver talks to our Chromium); never `playwright install`.
if [[ -x .venv/bin/python ]] && ! .venv/bin/python -c 'import playwright' 2>/dev/null; then
  say "installing the playwright Python package into .venv"
  .venv/bin/python -m pip install -q 'playwright>=1.45,<2'
fi
say "ready"
