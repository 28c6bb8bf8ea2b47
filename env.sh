# Source me: `source env.sh` gives a shell with the built workspace on the paths
# (venv, ROS 2 from the wheels or the system, install/setup.bash of this workspace).
_us_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
_us_venv=${VENV:-$_us_root/.venv}
if [ ! -f "$_us_root/install/setup.bash" ]; then
  echo "env.sh: workspace not built yet; run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi
_us_ros=$(cat "$_us_venv/.ros-source" 2>/dev/null || echo wheels)
_us_had_u=0; case $- in *u*) _us_had_u=1; set +u;; esac
if [ "$_us_ros" != wheels ]; then
  source "/opt/ros/$_us_ros/setup.bash"
fi
source "$_us_venv/bin/activate"
if [ "$_us_ros" = wheels ]; then
  export AMENT_PREFIX_PATH="$_us_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
fi
source "$_us_root/install/setup.bash"
[ $_us_had_u -eq 1 ] && set -u
export US_WS_ROOT=$_us_root
# console scripts of the workspace (where `ros2 run` looks) on PATH, e.g. us-channel
for _us_bin in "$_us_root"/install/*/lib/*/; do
  case ":$PATH:" in *":${_us_bin%/}:"*) ;; *) PATH="${_us_bin%/}:$PATH";; esac
done
export PATH
unset _us_bin
# iceoryx2 prints a warning about its absent config file on every start
export IOX2_LOG_LEVEL=${IOX2_LOG_LEVEL:-Error}
unset _us_root _us_venv _us_ros _us_had_u
