#!/usr/bin/env bash
# The shaped-link row of BENCHMARKS.md (issue 8): farmcast and ffmpeg each push
# the same 640x360@30 clip at the same nominal bitrate (4000 kbit/s, x264
# ultrafast/zerolatency, GOP 1 s, AAC 128k) through a 1200 kbit/s tbf link to
# nginx-rtmp in its own network namespace, one after the other, for DURATION
# seconds of wall clock each. ffmpeg has no adaptation: over a thin link its
# output blocks and it falls behind real time.
#
# The same again over SRT, to srt-live-transmit in the namespace (ffmpeg with
# libsrt, mpegts, pkt_size 1316).
#
# Measured per program: frames the server recorded (ffprobe packet count) out
# of DURATION x 30, the time from the first publish to the first logged
# `abr target_kbps=N` with N below the link (farmcast only; n/a when the
# daemon never logs one, e.g. `live.adaptive_bitrate = false`), reconnects
# (recordings made - 1), peak RSS (VmHWM). bench/run.sh (section `uplink`)
# runs this and puts the table in BENCHMARKS.md.
#
# Prints a markdown table; does not touch BENCHMARKS.md. Needs root (network
# namespace, tc); elsewhere it prints SKIP and exits 0. Nothing leaves the
# machine: the only addresses are the two ends of a veth pair made here, and a
# blackhole route for their /30 keeps traffic here while a link is down.
#
#   bench/uplink.sh                    # DURATION=60 LINK_KBIT=1200 BITRATE=4000
#   FARMCAST_BIN=target/debug/farmcast DURATION=30 bench/uplink.sh
set -euo pipefail

DURATION=${DURATION:-60}
LINK_KBIT=${LINK_KBIT:-1200}
BITRATE=${BITRATE:-4000}
MIN_BITRATE=${MIN_BITRATE:-400}
FPS=30

if [ "$(id -u)" != 0 ]; then
    echo "SKIP: bench/uplink.sh needs root for a network namespace and tc" >&2
    exit 0
fi
for bin in ip tc nginx ffmpeg ffprobe; do
    command -v "$bin" >/dev/null || { echo "missing $bin (Debian: iproute2 nginx libnginx-mod-rtmp ffmpeg)" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${FARMCAST_BIN:-$ROOT/target/release/farmcast}
if [ ! -x "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --bin farmcast >&2)
fi
OUT=$(mktemp -d /tmp/fc-uplink.XXXXXX)
chmod 755 "$OUT"

# Names and a /30 of our own (interface names are at most 15 bytes).
ID=$(( $$ % 1000000 ))
NS=fc-$$-bench
HIF=fc${ID}bh
NIF=fc${ID}bn
BASE=$(( ($$ % 64) * 4 ))
SUBNET=169.254.253.$BASE/30
HADDR=169.254.253.$((BASE + 1))
NADDR=169.254.253.$((BASE + 2))

PIDS=()
NGINX=""
cleanup() {
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    # nginx leads its own process group (setsid): the workers go with it.
    [ -n "$NGINX" ] && kill -KILL -- "-$NGINX" 2>/dev/null || true
    ip link del "$HIF" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    ip route del blackhole "$SUBNET" metric 4096 2>/dev/null || true
}
trap cleanup EXIT

ip route add blackhole "$SUBNET" metric 4096
ip netns add "$NS"
ip link add "$HIF" type veth peer name "$NIF"
ip link set "$NIF" netns "$NS"
ip addr add "$HADDR/30" dev "$HIF"
ip link set "$HIF" up
ip netns exec "$NS" ip addr add "$NADDR/30" dev "$NIF"
ip netns exec "$NS" ip link set "$NIF" up
ip netns exec "$NS" ip link set lo up
ip route get "$NADDR" | grep -q "dev $HIF " || { echo "$NADDR not routed through $HIF" >&2; exit 1; }
tc qdisc replace dev "$HIF" root tbf rate "${LINK_KBIT}kbit" burst 32kbit latency 400ms

# nginx-rtmp in the namespace: records everything, logs each publish per stream.
mkdir -p "$OUT/nginx/rec"
chmod 777 "$OUT/nginx/rec"
cat >"$OUT/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process on;
user root;
worker_processes 1;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log info;
events { worker_connections 64; }
rtmp {
  server {
    listen $NADDR:1935;
    chunk_size 4096;
    drop_idle_publisher 10s;
    application live {
      live on;
      record all;
      record_path $OUT/nginx/rec;
      record_unique on;
      exec_publish /bin/sh -c "date +%s.%N >> $OUT/nginx/publish-\$name.log";
    }
  }
}
EOF
setsid ip netns exec "$NS" nginx -p "$OUT/nginx" -c "$OUT/nginx/nginx.conf" </dev/null >/dev/null 2>&1 &
NGINX=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$NADDR/1935") 2>/dev/null && break
    sleep 0.1
done

# One clip for both, paced in real time by each (STACK-NOTES: same input).
CLIP=$OUT/clip.y4m
ffmpeg -hide_banner -loglevel error -nostdin -f lavfi -i "testsrc2=size=640x360:rate=$FPS" \
    -t 10 -pix_fmt yuv420p "$CLIP"

peak_rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo "?"; }

# Waits up to 30 s for the first publish of stream $1; prints its epoch time.
first_publish() {
    local log=$OUT/nginx/publish-$1.log
    for _ in $(seq 300); do
        [ -s "$log" ] && { head -n1 "$log"; return; }
        sleep 0.1
    done
    echo ""
}

# Video packets (one per frame) in every recording of stream $1.
frames_of() {
    local total=0 n f
    for f in "$OUT/nginx/rec/$1"-*.flv; do
        [ -s "$f" ] || continue
        n=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
            -of csv=p=0 "$f" 2>/dev/null | head -n1)
        total=$(( total + ${n:-0} ))
    done
    echo "$total"
}

reconnects_of() {
    local n
    n=$(find "$OUT/nginx/rec" -name "$1-*.flv" -size +1k | wc -l)
    echo $(( n > 0 ? n - 1 : 0 ))
}

# Seconds from the publish to the first `abr ... target_kbps=N` with N < link.
adapt_time() {
    local published=$1 line stamp
    line=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT/farmcast.log" \
        | awk -v link="$LINK_KBIT" '/abr/ && match($0, /target_kbps=[0-9]+/) {
              v = substr($0, RSTART + 12, RLENGTH - 12) + 0; if (v < link) { print; exit } }')
    [ -n "$line" ] || { echo "n/a"; return; }
    stamp=$(echo "$line" | awk '{print $1}')
    awk -v a="$(date -d "$stamp" +%s.%N)" -v p="$published" 'BEGIN { printf "%.1f s", a - p }'
}

ROWS=()
row() { ROWS+=("| $1 | $LINK_KBIT | $BITRATE | $2 | $3 | $4 | $5 | $6 |"); }

# SRT: srt-live-transmit listening in the namespace, one per program, writing
# the MPEG-TS it gets to a file. SRT has no publish log: "published" is the
# moment the file first has bytes.
SRT_PORT=9000
srt_listen() {
    local name=$1 port=$2
    setsid ip netns exec "$NS" stdbuf -o0 srt-live-transmit -q "srt://$NADDR:$port?mode=listener" file://con \
        </dev/null >"$OUT/srt-$name.ts" 2>"$OUT/srt-$name.log" &
    PIDS+=("$!")
    sleep 0.5
}
first_bytes() {
    for _ in $(seq 300); do
        [ -s "$OUT/srt-$1.ts" ] && { date +%s.%N; return; }
        sleep 0.1
    done
    echo ""
}
ts_frames() {
    ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
        -of csv=p=0 "$OUT/srt-$1.ts" 2>/dev/null | head -n1
}

pct() { awk -v a="${1:-0}" -v b="$(( DURATION * FPS ))" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }

# Runs farmcast for DURATION s to one destination: $1 label, $2 the
# `[[destinations]]` url/key lines, $3 a command printing the publish time,
# $4 one printing the frames delivered, $5 one printing reconnects.
run_farmcast() {
    local label=$1 dest=$2 published frames rss fc
    cat >"$OUT/farmcast.toml" <<EOF
device_id = "bench-uplink"
state_dir = "$OUT/state"

[video]
source = "file:$CLIP"
width = 640
height = 360
framerate = $FPS
bitrate_kbps = $BITRATE
min_bitrate_kbps = $MIN_BITRATE
encoder = "x264enc"
x264_preset = "ultrafast"
keyframe_interval_s = 1

[audio]
source = "test"

[live]
autostart = true

[recording]
dir = "$OUT/recordings"

[gpio]
backend = "sim"
sim_socket = "$OUT/sim.sock"

[scale]
kind = "none"

[mqtt]
enabled = false

[[destinations]]
name = "uplink"
$dest
EOF
    RUST_LOG=info "$BIN" run --config "$OUT/farmcast.toml" </dev/null >"$OUT/farmcast.log" 2>&1 &
    fc=$!
    PIDS+=("$fc")
    published=$($3)
    if [ -z "$published" ]; then
        echo "farmcast ($label) never published; its log: $OUT/farmcast.log" >&2
        row "$label" "no publish" - - - -
        kill -KILL "$fc" 2>/dev/null || true
        return
    fi
    sleep "$DURATION"
    rss=$(peak_rss_kib "$fc")
    kill -TERM "$fc"
    for _ in $(seq 100); do kill -0 "$fc" 2>/dev/null || break; sleep 0.1; done
    sleep 3 # the server closes the file once the shaped link drains
    frames=$($4)
    row "$label" "$frames / $(( DURATION * FPS ))" "$(pct "$frames")" \
        "$(adapt_time "$published")" "$($5)" "$(( rss / 1024 )) MiB"
    cp "$OUT/farmcast.log" "$OUT/farmcast-${label// /-}.log"
}

# Runs ffmpeg for DURATION s: $1 label, $2-$4 as run_farmcast's $3-$5, then
# ffmpeg's output arguments.
run_ffmpeg() {
    local label=$1 pubcmd=$2 framescmd=$3 recocmd=$4 ff published frames rss
    shift 4
    ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$CLIP" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000" -map 0:v -map 1:a \
        -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p \
        -b:v "${BITRATE}k" -maxrate "${BITRATE}k" -bufsize "${BITRATE}k" -g "$FPS" \
        -c:a aac -b:a 128k "$@" >"$OUT/ffmpeg-${label// /-}.log" 2>&1 &
    ff=$!
    PIDS+=("$ff")
    published=$($pubcmd)
    if [ -z "$published" ]; then
        row "$label" "no publish" - - - -
        kill -KILL "$ff" 2>/dev/null || true
        return
    fi
    sleep "$DURATION"
    rss=$(peak_rss_kib "$ff")
    kill -INT "$ff" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ff" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ff" 2>/dev/null || true
    sleep 3
    frames=$($framescmd)
    row "$label" "$frames / $(( DURATION * FPS ))" "$(pct "$frames")" \
        "n/a (no adaptation)" "$($recocmd)" "$(( rss / 1024 )) MiB"
}

# Reconnects over SRT: the daemon logs each destination that failed.
srt_reconnects() { grep -c "destination failed" "$OUT/farmcast.log" || true; }

# --- RTMP -------------------------------------------------------------------
run_farmcast "farmcast RTMP" "url = \"rtmp://$NADDR:1935/live\"
key = \"farmcast\"" "first_publish farmcast" "frames_of farmcast" "reconnects_of farmcast"
run_ffmpeg "ffmpeg RTMP" "first_publish ffmpeg" "frames_of ffmpeg" "reconnects_of ffmpeg" \
    -f flv "rtmp://$NADDR:1935/live/ffmpeg"

# --- SRT --------------------------------------------------------------------
if command -v srt-live-transmit >/dev/null; then
    srt_listen farmcast "$SRT_PORT"
    run_farmcast "farmcast SRT" "url = \"srt://$NADDR:$SRT_PORT\"" \
        "first_bytes farmcast" "ts_frames farmcast" srt_reconnects
    srt_listen ffmpeg $((SRT_PORT + 1))
    run_ffmpeg "ffmpeg SRT" "first_bytes ffmpeg" "ts_frames ffmpeg" "echo n/a" \
        -f mpegts "srt://$NADDR:$((SRT_PORT + 1))?mode=caller&pkt_size=1316"
else
    echo "srt-live-transmit missing (Debian: srt-tools): no SRT rows" >&2
fi

echo
echo "Shaped link: ${LINK_KBIT} kbit/s tbf (burst 32 kbit, latency 400 ms) to nginx-rtmp or srt-live-transmit in a netns; 640x360@${FPS} clip, x264 ultrafast/zerolatency, ${BITRATE} kbit/s nominal, ${DURATION} s on air each"
echo
echo "| program | link kbit/s | nominal kbit/s | frames delivered | delivered | time to adapt | reconnects | peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
echo
echo "(logs and recordings: $OUT)"
