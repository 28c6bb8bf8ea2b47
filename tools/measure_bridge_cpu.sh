# Bridge CPU while a raw gRPC client streams and after it is SIGKILLed (docs/reliability.md).
# Run from the repository root after `make setup`: bash tools/measure_bridge_cpu.sh
source "$(dirname "$0")/../env.sh"
export ROS_DOMAIN_ID=93 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
us-run --nodes acquisition,grpc_bridge --namespace /burn --set acquisition.source=sim --set acquisition.channel_name=burn/f --set grpc_bridge.frames_channel=burn/f --set grpc_bridge.masks_channel=burn/m --set grpc_bridge.port=50077 --set grpc_bridge.igtl_port=0 > /tmp/burn_graph.log 2>&1 &
RUN=$!
sleep 8
BR=$(pgrep -f "grpc_bridge_node.*__ns:=/burn")
# utime + stime in clock ticks (100 per s): the difference per second is % of one core
cpu() { awk '{print $14+$15}' /proc/$BR/stat; }
us-client --target 127.0.0.1:50077 stream --encoding raw --frames 0 --quiet > /tmp/burn_client.log 2>&1 &
CL=$!
sleep 4
prev=$(cpu); for i in 1 2 3; do sleep 1; c=$(cpu); echo "streaming t=$i cpu%=$((c-prev))"; prev=$c; done
kill -9 $CL
for i in $(seq 1 10); do sleep 1; c=$(cpu); echo "after kill t=$i cpu%=$((c-prev))"; prev=$c; done
kill -INT $RUN; wait $RUN
