"""Test isolation for the whole workspace (collected before every test directory).

Each pytest run gets its own ROS domain confined to this host and its own log folder, so
parallel runs and other ROS graphs on the machine do not cross-talk.
"""

import os
import tempfile

os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
_log_dir = tempfile.mkdtemp(prefix="us-ros-test-")
os.environ.setdefault("ROS_LOG_DIR", _log_dir)
os.environ.setdefault("ROS_HOME", _log_dir)
os.environ.setdefault("IOX2_LOG_LEVEL", "Error")
