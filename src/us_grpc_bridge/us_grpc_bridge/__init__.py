"""gRPC bridge: remote streaming and control for headsets and workstations.

The server (``service``), codecs, auth, fan-out, pose and client modules never import rclpy;
``node`` is the thin ROS 2 lifecycle node. API: docs/grpc-api.md.
"""
