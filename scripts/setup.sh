#!/usr/bin/env bash
# Sets up everything ibet needs on a fresh Debian/Ubuntu machine; safe to run again (it skips
# what is already there). Used by `make demo` and `make test`.
#
#   scripts/setup.sh          Debian packages, the virtualenv (.venv) with ibet and its dependencies
#   scripts/setup.sh --test   the same, plus the test extras, PostgreSQL's server (the tests start
#                             their own), and the Apache Kafka broker jars (resolved from Maven
#                             Central with Maven into ~/.cache/ibet)
set -euo pipefail
cd "$(dirname "$0")/.."

with_test=0
[[ "${1:-}" == "--test" ]] && with_test=1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# 1. Debian packages: OpenCV needs libGL and GLib, SRT ingest srt-tools; the test broker needs Java 17 and Maven, the
#    database tests Debian's PostgreSQL server.
packages=()
ldconfig -p | grep -q 'libGL.so.1 ' || packages+=(libgl1)
ldconfig -p | grep -q 'libglib-2.0.so.0 ' || packages+=(libglib2.0-0)
# SRT: PyAV's FFmpeg has no SRT protocol; `ibet ingest stream` relays srt:// through srt-live-transmit.
command -v srt-live-transmit >/dev/null || packages+=(srt-tools)
if (( with_test )); then
  command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || packages+=(maven)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || packages+=(postgresql)
  [[ -x /usr/sbin/mosquitto ]] || command -v mosquitto >/dev/null || packages+=(mosquitto)  # MQTT telemetry tests
  [[ -f /usr/lib/nginx/modules/ngx_rtmp_module.so ]] || packages+=(libnginx-mod-rtmp)  # the RTMP media server in tests
  command -v rtsp-server-perl >/dev/null || packages+=(rtsp-server-perl)  # the RTSP media server in tests
fi
if (( ${#packages[@]} )); then
  say "installing Debian packages: ${packages[*]}"
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

# 2. Python 3.11+ virtualenv with ibet installed in editable mode. PyTorch (pulled in by
#    Ultralytics) is large: pip's cache is kept, and a venv is only reinstalled when
#    pyproject.toml changes.
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "ibet needs Python >= 3.11 ($python is older)"; exit 1; }
[[ -x .venv/bin/python ]] || { say "creating .venv"; "$python" -m venv .venv; }
extras=""
(( with_test )) && extras="[test]"
stamp=".venv/.ibet-installed${extras}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  say "installing ibet${extras} and its dependencies into .venv (the first time downloads PyTorch: several GB)"
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install --progress-bar off -e ".${extras}"
  echo "$want" > "$stamp"
fi
.venv/bin/python -c 'import cv2, kafka, pydantic, prometheus_client' || { echo "the virtualenv is broken: rm -rf .venv and run again"; exit 1; }

# 3. The Apache Kafka broker jars for the integration tests and `ibet bench`.
if (( with_test )); then
  .venv/bin/python -m ibet_testing.kafka_broker resolve >/dev/null
  say "Kafka broker jars ready in $(.venv/bin/python -c 'from ibet_testing.kafka_broker import resolve_jars; print(resolve_jars())')"
  # 4. Test tools with their own set-up scripts: Chromium + Playwright for the console's browser
  #    tests, kustomize and the Strimzi/KEDA CRD schemas for the deploy/k8s tests.
  for extra in scripts/setup-browser.sh scripts/setup-k8s-tools.sh; do
    [[ -f "$extra" ]] && bash "$extra"
  done
fi
say "ready"
