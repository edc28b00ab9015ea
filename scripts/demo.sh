#!/usr/bin/env bash
# A whole show on embedded defaults: test camera and tone, simulated buttons and
# scale, a local nginx-rtmp ingest server. Watch it with:
#     ffplay rtmp://127.0.0.1:1935/live/farm-show
# Press the (simulated) go-live button or end the show:
#     echo "press go_live" | nc -U /tmp/farmcast-demo/sim.sock
#     echo "hold go_live 2.5" | nc -U /tmp/farmcast-demo/sim.sock
# Ctrl-C ends the show cleanly (recordings in /tmp/farmcast-demo/recordings).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
cargo build --release --locked

work=/tmp/farmcast-demo
mkdir -p "$work/nginx" "$work/recordings"
port=1935
if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
  echo "demo: something already listens on 127.0.0.1:$port; stop it or edit configs/demo.toml" >&2
  exit 1
fi
cat > "$work/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$port; application live { live on; } } }
CONF
nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
nginx_pid=$!
mosquitto_pid=
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' > "$work/mosquitto.conf"
  [ "$(id -u)" -eq 0 ] && echo "user root" >> "$work/mosquitto.conf"
  mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  mosquitto_pid=$!
fi
trap 'kill $nginx_pid $mosquitto_pid 2>/dev/null || true' EXIT
sleep 0.5
echo "demo: MQTT on 127.0.0.1:1883; watch with: mosquitto_sub -t 'farmcast/#' -v"

echo "demo: ingest server on rtmp://127.0.0.1:$port/live; watch with: ffplay rtmp://127.0.0.1:$port/live/farm-show"
./target/release/farmcast run --config configs/demo.toml
