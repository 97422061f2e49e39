#!/usr/bin/env bash
# Set up (with test tools) and run the whole test suite headless.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export QT_QPA_PLATFORM=offscreen
export ALSA_CONFIG_PATH="$PWD/tests/alsa-null.conf"
export HF_HUB_OFFLINE=1
exec .venv/bin/python -m pytest "$@"
