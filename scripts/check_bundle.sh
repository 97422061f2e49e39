#!/usr/bin/env bash
# Prove the built bundle (scripts/build_bundle.sh) works: run its --self-test off screen and under
# Xvfb with the real xcb platform plugin (its api_server check serves the tiny model over HTTP on a
# loopback port), check the JSON reports, check that `dia-studio serve --help` runs, and enforce the
# size guard.
#   scripts/check_bundle.sh [dist/dia-studio]
# The bundle runs with a clean environment (no venv, no PYTHONPATH, a fresh HOME) so it can only use
# what it carries. Exit status 0 = all good.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-dist/dia-studio}
EXE="$BUNDLE/dia-studio"
# Size guard: the bundle measured 959 MB (torch 500, PySide6 97, PyAV 102, SciPy 78, NumPy 42).
# The limit leaves ~20 % headroom; raise it deliberately, with a reason, when a dependency grows.
MAX_MB=${DIA_STUDIO_BUNDLE_MAX_MB:-1150}
TIMEOUT=${DIA_STUDIO_SELF_TEST_TIMEOUT:-180}

[ -x "$EXE" ] || { echo "check_bundle: $EXE not found; run scripts/build_bundle.sh first" >&2; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

size_mb=$(du -sm "$BUNDLE" | cut -f1)
echo "bundle size: ${size_mb} MB (limit ${MAX_MB} MB)"
if [ "$size_mb" -gt "$MAX_MB" ]; then
  echo "check_bundle: FAIL: the bundle grew to ${size_mb} MB, above the ${MAX_MB} MB limit" >&2
  du -sm "$BUNDLE"/_internal/* | sort -rn | head -10 >&2
  exit 1
fi

# Markers of a broken freeze (after Friture's CI); none may appear on stderr.
FATAL='ModuleNotFoundError|ImportError|cannot load Qt platform plugin|Could not load the Qt platform plugin|error while loading shared libraries|undefined symbol|Traceback'

run_self_test() {  # name, then extra env assignments
  local name=$1; shift
  local home="$OUT/home-$name" report="$OUT/report-$name.json" err="$OUT/stderr-$name.txt"
  mkdir -p "$home"
  local start=$(date +%s) code=0
  env -i PATH=/usr/bin:/bin HOME="$home" LANG=C.UTF-8 ALSA_CONFIG_PATH="$PWD/tests/alsa-null.conf" "$@" \
    timeout "$TIMEOUT" "$EXE" --self-test="$report" 2>"$err" || code=$?
  echo "self-test [$name]: exit $code in $(( $(date +%s) - start )) s"
  if [ "$code" != 0 ] || [ ! -s "$report" ]; then
    echo "check_bundle: FAIL: self-test [$name] exited $code" >&2
    [ -s "$report" ] && cat "$report" >&2
    tail -40 "$err" >&2
    return 1
  fi
  if grep -Eq "$FATAL" "$err"; then
    echo "check_bundle: FAIL: self-test [$name] printed errors:" >&2
    grep -E -B2 -A5 "$FATAL" "$err" | head -40 >&2
    return 1
  fi
  "$PWD/.venv/bin/python" - "$report" "$name" <<'PY'
import json
import sys

report, name = sys.argv[1], sys.argv[2]
data = json.load(open(report, encoding="utf-8"))
want = {"qt", "platform_plugin", "resources", "data_dir", "engine", "torch", "soundfile", "portaudio",
        "audio", "window", "render", "cpu_kernels", "user_data", "api_server"}
checks = data.get("checks", {})
problems = [f"missing check {c}" for c in sorted(want - set(checks))]
problems += [f"{c}: {v['detail']}" for c, v in checks.items() if not v.get("ok")]
if not data.get("frozen"):
    problems.append("the report says the app was not frozen")
expected_platform = "xcb" if name == "xvfb" else "offscreen"
if checks.get("platform_plugin", {}).get("detail", {}).get("active") != expected_platform:
    problems.append(f"platform plugin is not {expected_platform}: {checks.get('platform_plugin')}")
if "_internal" not in str(checks.get("portaudio", {}).get("detail", {}).get("library", "")):
    problems.append(f"PortAudio did not come from the bundle: {checks.get('portaudio')}")
kernels = checks.get("cpu_kernels", {}).get("detail", {})
if not str(kernels.get("kernels", "")).startswith("native ") or "_internal" not in str(kernels.get("library")):
    problems.append(f"the native CPU kernels did not load from the bundle: {kernels}")
if data.get("ok") is not True:
    problems.append("report ok is not true")
for p in problems:
    print(f"check_bundle: FAIL [{name}]: {p}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"self-test [{name}]: {len(checks)} checks ok; " + "; ".join(
    f"{c}={checks[c]['detail']}" for c in ("qt", "torch", "cpu_kernels", "portaudio", "render", "api_server")))
PY
}

run_self_test offscreen QT_QPA_PLATFORM=offscreen

# The API server's command line: its parser must build in the frozen app (the server loads lazily).
mkdir -p "$OUT/home-serve"
serve_code=0
env -i PATH=/usr/bin:/bin HOME="$OUT/home-serve" LANG=C.UTF-8 timeout 60 "$EXE" serve --help \
  >"$OUT/serve-help.txt" 2>&1 || serve_code=$?
if [ "$serve_code" != 0 ] || ! grep -q -- "--allow-remote" "$OUT/serve-help.txt" || grep -Eq "$FATAL" "$OUT/serve-help.txt"; then
  echo "check_bundle: FAIL: dia-studio serve --help exited $serve_code:" >&2
  tail -20 "$OUT/serve-help.txt" >&2
  exit 1
fi
echo "serve --help: ok"

command -v xvfb-run >/dev/null || { echo "check_bundle: FAIL: xvfb-run missing (scripts/setup.sh --dev installs it)" >&2; exit 1; }
# xvfb-run needs xauth on PATH; the bundle inherits only DISPLAY/XAUTHORITY from it.
run_self_test xvfb QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1280x1024x24"
echo "check_bundle: OK (${size_mb} MB, limit ${MAX_MB} MB)"
