#!/usr/bin/env bash
# colcon build of the workspace against the venv's ROS 2 (PyPI wheels) or a system ROS 2.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
ROOT=$PWD
ros_source=$(cat "$VENV/.ros-source" 2>/dev/null || echo wheels)

set +u
if [ "$ros_source" != wheels ]; then
  # shellcheck disable=SC1090
  source "/opt/ros/$ros_source/setup.bash"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
set -u

CMAKE_ARGS=("-DPython3_EXECUTABLE=$ROOT/$VENV/bin/python" "-DBUILD_TESTING=OFF")
if [ "$ros_source" = wheels ]; then
  # ament/rosidl CMake packages live in the venv; the *_msgs wheels export include paths of
  # the machine that built them, which tools/cmake/ros_wheels_fix.cmake drops.
  export AMENT_PREFIX_PATH="$ROOT/$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  export CMAKE_PREFIX_PATH="$ROOT/$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  CMAKE_ARGS+=("-DCMAKE_PROJECT_INCLUDE=$ROOT/tools/cmake/ros_wheels_fix.cmake")
fi

SKIP=()
if [ "$ros_source" != wheels ] && [ -d "/opt/ros/$ros_source/share/tf2_msgs" ]; then
  SKIP=(--packages-skip tf2_msgs)  # the system's tf2_msgs wins over our compatibility build
fi

colcon --log-base log build --base-paths src --symlink-install "${SKIP[@]}" \
  --event-handlers console_cohesion- summary+ status- \
  --cmake-args "${CMAKE_ARGS[@]}" 2>&1 | grep -v "doesn't contain any 'local_setup" || {
  echo "[build] colcon build failed; see log/latest_build" >&2; exit 1; }
test -f install/setup.bash
