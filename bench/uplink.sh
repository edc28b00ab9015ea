#!/usr/bin/env bash
# The shaped-link rows of BENCHMARKS.md (issues 8 and 14): farmcast and ffmpeg
# each push the same 640x360@30 clip at the same nominal bitrate (4000 kbit/s,
# x264 ultrafast/zerolatency, GOP 1 s, AAC 128k) through a tbf-shaped link to
# nginx-rtmp in its own network namespace, one after the other, for DURATION
# seconds of wall clock from the first publish. ffmpeg has no adaptation:
# over a thin link its output blocks and it falls behind real time.
#
# Two links:
#   fixed     LINK_KBIT (1200) all along;
#   stepping  1200 -> 600 at STEP1 s (15) -> 2000 at STEP2 s (30) after the
#             publish (`tc qdisc change` on the running tbf).
# farmcast runs first with an empty state folder (nothing remembered: it
# starts at a quarter of the ceiling and ramps up), then again with what the
# first run remembered (`<state_dir>/abr/links.json`), then on the stepping
# link (still remembering the fixed link). SRT=1 (the default) adds the fixed
# link over SRT, to srt-live-transmit in the namespace (ffmpeg with libsrt).
#
# Measured per run:
# - frames delivered: video frames the server recorded (ffprobe packet
#   count) out of DURATION x 30 (target >= 99%);
# - carried 7-10 s after go-live: what the server received from 7 to 10 s
#   after the publish (the recording's growth, sampled every 250 ms), in
#   percent of the link (target >= 80%); on the stepping link also 7-10 s
#   after each step, of the new rate;
# - reconnects (recordings made - 1), peak RSS (VmHWM), and the target the
#   show started at (farmcast's log).
#
# Prints a markdown table; does not touch BENCHMARKS.md (`bench/run.sh --only
# uplink` does, through bench/sections_uplink.py). Needs root (network
# namespace, tc); elsewhere it prints SKIP and exits 0. Nothing leaves the
# machine: the only addresses are the two ends of a veth pair made here, and a
# blackhole route for their /30 keeps traffic here while a link is down.
#
#   bench/uplink.sh                    # DURATION=45 LINK_KBIT=1200 BITRATE=4000
#   FARMCAST_BIN=target/debug/farmcast DURATION=30 SRT=0 bench/uplink.sh
#   RUNS=3 bench/uplink.sh             # each farmcast run three times
#   ONLY="fc-warm fc-step" bench/uplink.sh   # of fc-cold fc-warm ff-fixed fc-srt ff-srt fc-step ff-step
set -euo pipefail

DURATION=${DURATION:-45}
LINK_KBIT=${LINK_KBIT:-1200}
STEP1=${STEP1:-15}
STEP1_KBIT=${STEP1_KBIT:-600}
STEP2=${STEP2:-30}
STEP2_KBIT=${STEP2_KBIT:-2000}
SRT=${SRT:-1}
# Every farmcast run RUNS times (one 45 s run cannot tell a few points
# apart on this rig); ONLY, a subset of the run names below, for a quick look.
RUNS=${RUNS:-1}
ONLY=${ONLY:-}
wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
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
# $1: replace (make it) or change (a new rate for the running one).
shape() { tc qdisc "$1" dev "$HIF" root tbf rate "${2}kbit" burst 32kbit latency 400ms; }
shape replace "$LINK_KBIT"

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
            -of csv=p=0 "$f" 2>/dev/null | head -n1) || true
        total=$(( total + ${n:-0} ))
    done
    echo "$total"
}

reconnects_of() {
    local n
    n=$(find "$OUT/nginx/rec" -name "$1-*.flv" -size +1k | wc -l)
    echo $(( n > 0 ? n - 1 : 0 ))
}

# Samples the bytes the server has of stream $1 (a command printing a byte
# count) every 250 ms into $2 as "epoch bytes", until killed.
sample_bytes() {
    while :; do
        printf '%s %s\n' "$(date +%s.%N)" "$($1)"
        sleep 0.25
    done >"$2"
}
flv_bytes() { cat "$OUT"/nginx/rec/"$1"-*.flv 2>/dev/null | wc -c; }
ts_bytes() { stat -c %s "$OUT/srt-$1.ts" 2>/dev/null || echo 0; }

# What the server received from $3 to $4 s after the publish $2, in percent
# of $5 kbit/s, from the samples in $1.
carried() {
    awk -v p="$2" -v a="$3" -v b="$4" -v link="$5" '
        { t = $1 - p; if (t <= a) { ta = t; sa = $2 } if (t <= b) { tb = t; sb = $2 } }
        END { if (tb <= ta) { print "n/a"; exit }
              printf "%.0f%%", 100 * (sb - sa) * 8 / 1000 / (tb - ta) / link }' "$1"
}

# Runs the link plan $1 (fixed | stepping) in the background from now on.
PLAN=""
link_plan() {
    [ "$1" = stepping ] || return 0
    (sleep "$STEP1"; shape change "$STEP1_KBIT"; sleep $(( STEP2 - STEP1 )); shape change "$STEP2_KBIT") &
    PLAN=$!
    PIDS+=("$PLAN")
}
end_plan() {
    if [ -n "$PLAN" ]; then kill "$PLAN" 2>/dev/null || true; fi
    PLAN=""
    shape change "$LINK_KBIT"
}

# The carried columns for link plan $1: samples $2, publish $3.
carried_cols() {
    local at10
    at10=$(carried "$2" "$3" 7 10 "$LINK_KBIT")
    if [ "$1" = stepping ]; then
        echo "$at10 | $(carried "$2" "$3" $(( STEP1 + 7 )) $(( STEP1 + 10 )) "$STEP1_KBIT") | $(carried "$2" "$3" $(( STEP2 + 7 )) $(( STEP2 + 10 )) "$STEP2_KBIT")"
    else
        echo "$at10 | - | -"
    fi
}

link_name() {
    if [ "$1" = stepping ]; then echo "${LINK_KBIT}→${STEP1_KBIT}→${STEP2_KBIT}"; else echo "$LINK_KBIT"; fi
}

# The target farmcast's show started at, from its log.
show_start() {
    # Reads to the end (no early exit: sed would die of SIGPIPE, and
    # pipefail would end the whole run).
    sed 's/\x1b\[[0-9;]*m//g' "$OUT/farmcast.log" | awk '/abr: / && /the show starts/ && !done {
        t = ""; r = ""
        if (match($0, /target_kbps=[0-9]+/)) t = substr($0, RSTART + 12, RLENGTH - 12)
        if (match($0, /remembered_link_kbps=[0-9]+/)) r = substr($0, RSTART + 21, RLENGTH - 21)
        if (r != "") out = t " (remembered " r ")"; else out = t " (nothing remembered)"
        done = 1 }
        END { print out }'
}

# KiB (or "?") as MiB.
mib() { if [[ "$1" =~ ^[0-9]+$ ]]; then echo "$(( $1 / 1024 )) MiB"; else echo "?"; fi; }

pct() { awk -v a="${1:-0}" -v b="$(( DURATION * FPS ))" 'BEGIN { printf "%.1f%%", 100 * a / b }'; }

ROWS=()
# $1 link plan, $2 program label, $3 start, $4 frames, $5 carried columns, $6 reconnects, $7 RSS
row() { ROWS+=("| $(link_name "$1") | $2 | $3 | $4 / $(( DURATION * FPS )) | $(pct "$4") | $5 | $6 | $7 |"); }
no_publish() { ROWS+=("| $(link_name "$1") | $2 | no publish | - | - | - | - | - | - | - |"); }

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
    local n
    n=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets \
        -of csv=p=0 "$OUT/srt-$1.ts" 2>/dev/null | head -n1) || true
    echo "${n:-0}"
}

# Waits DURATION s of a run (the link plan and the byte sampler beside it)
# from its publish; $1 plan, $2 bytes command, $3 samples file.
on_air() {
    local sampler
    link_plan "$1"
    sample_bytes "$2" "$3" &
    sampler=$!
    PIDS+=("$sampler")
    sleep "$DURATION"
    SAMPLER=$sampler
}
after_run() {
    sleep 3 # the server closes the file once the shaped link drains
    kill "$SAMPLER" 2>/dev/null || true
    end_plan
}

# Runs farmcast for DURATION s to one destination: $1 link plan, $2 label,
# $3 the `[[destinations]]` url/key lines, $4 a command printing the publish
# time, $5 one printing the frames delivered, $6 one printing reconnects, $7
# one printing the bytes the server has. The state folder is kept between runs.
run_farmcast() {
    local plan=$1 label=$2 dest=$3 published frames rss fc start samples
    samples="$OUT/bytes-${label// /-}-$plan-$(date +%s%N).log"
    cat >"$OUT/farmcast.toml" <<TOML
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
TOML
    RUST_LOG=${RUST_LOG:-info,farmcast::abr_sample=debug} "$BIN" run --config "$OUT/farmcast.toml" </dev/null >"$OUT/farmcast.log" 2>&1 &
    fc=$!
    PIDS+=("$fc")
    published=$($4)
    if [ -z "$published" ]; then
        echo "farmcast ($label) never published; its log: $OUT/farmcast.log" >&2
        no_publish "$plan" "$label"
        kill -KILL "$fc" 2>/dev/null || true
        return
    fi
    on_air "$plan" "$7" "$samples"
    rss=$(peak_rss_kib "$fc")
    kill -TERM "$fc"
    for _ in $(seq 100); do kill -0 "$fc" 2>/dev/null || break; sleep 0.1; done
    after_run
    frames=$($5)
    start=$(show_start)
    row "$plan" "$label" "${start:-?}" "$frames" "$(carried_cols "$plan" "$samples" "$published")" \
        "$($6)" "$(mib "$rss")"
    cp "$OUT/farmcast.log" "$OUT/farmcast-${label// /-}-$plan-$published.log"
}

# Runs ffmpeg for DURATION s: $1 link plan, $2 label, $3-$6 as run_farmcast's
# $4-$7, then ffmpeg's output arguments.
run_ffmpeg() {
    local plan=$1 label=$2 pubcmd=$3 framescmd=$4 recocmd=$5 bytescmd=$6 ff published frames rss samples
    shift 6
    samples="$OUT/bytes-${label// /-}-$plan.log"
    ffmpeg -hide_banner -loglevel error -nostdin -re -stream_loop -1 -i "$CLIP" \
        -f lavfi -i "sine=frequency=440:sample_rate=48000" -map 0:v -map 1:a \
        -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p \
        -b:v "${BITRATE}k" -maxrate "${BITRATE}k" -bufsize "$(( BITRATE * 3 / 10 ))k" -g "$FPS" \
        -c:a aac -b:a 128k "$@" >"$OUT/ffmpeg-${label// /-}-$plan.log" 2>&1 &
    ff=$!
    PIDS+=("$ff")
    published=$($pubcmd)
    if [ -z "$published" ]; then
        no_publish "$plan" "$label"
        kill -KILL "$ff" 2>/dev/null || true
        return
    fi
    on_air "$plan" "$bytescmd" "$samples"
    rss=$(peak_rss_kib "$ff")
    kill -INT "$ff" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ff" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ff" 2>/dev/null || true
    after_run
    frames=$($framescmd)
    row "$plan" "$label" "$BITRATE (fixed)" "$frames" "$(carried_cols "$plan" "$samples" "$published")" \
        "$($recocmd)" "$(mib "$rss")"
}

# Reconnects over SRT: the daemon logs each destination that failed.
srt_reconnects() { grep -c "destination failed" "$OUT/farmcast.log" || true; }

# --- RTMP -------------------------------------------------------------------
# Each run publishes a stream of its own, so its recordings are its own.
rtmp_farmcast() {
    run_farmcast "$1" "farmcast RTMP" "url = \"rtmp://$NADDR:1935/live\"
key = \"$2\"" "first_publish $2" "frames_of $2" "reconnects_of $2" "flv_bytes $2"
}
rtmp_ffmpeg() {
    run_ffmpeg "$1" "ffmpeg RTMP" "first_publish $2" "frames_of $2" "reconnects_of $2" "flv_bytes $2" \
        -f flv "rtmp://$NADDR:1935/live/$2"
}
# Each repetition starts with an empty state folder, so its first run is
# cold; ffmpeg (no adaptation, the same every time) runs in the first only.
for rep in $(seq "$RUNS"); do
    rm -rf "$OUT/state"
    if wanted fc-cold; then rtmp_farmcast fixed "fc-cold-$rep"; fi # nothing remembered yet
    if wanted fc-warm; then rtmp_farmcast fixed "fc-warm-$rep"; fi # what fc-cold's link delivered
    if [ "$rep" = 1 ] && wanted ff-fixed; then rtmp_ffmpeg fixed ff-fixed; fi

    # --- SRT (the fixed link; farmcast remembers it from the RTMP runs) -----
    if [ "$SRT" = 1 ] && command -v srt-live-transmit >/dev/null; then
        if wanted fc-srt; then
            srt_listen "farmcast-$rep" $((SRT_PORT + 1 + rep))
            run_farmcast fixed "farmcast SRT" "url = \"srt://$NADDR:$((SRT_PORT + 1 + rep))\"" \
                "first_bytes farmcast-$rep" "ts_frames farmcast-$rep" srt_reconnects "ts_bytes farmcast-$rep"
        fi
        if [ "$rep" = 1 ] && wanted ff-srt; then
            srt_listen ffmpeg $((SRT_PORT + 1))
            run_ffmpeg fixed "ffmpeg SRT" "first_bytes ffmpeg" "ts_frames ffmpeg" "echo n/a" "ts_bytes ffmpeg" \
                -f mpegts "srt://$NADDR:$((SRT_PORT + 1))?mode=caller&pkt_size=1316"
        fi
    elif [ "$SRT" = 1 ] && [ "$rep" = 1 ]; then
        echo "srt-live-transmit missing (Debian: srt-tools): no SRT rows" >&2
    fi

    # --- the stepping link (farmcast remembering the fixed link) -------------
    if wanted fc-step; then rtmp_farmcast stepping "fc-step-$rep"; fi
    if [ "$rep" = 1 ] && wanted ff-step; then rtmp_ffmpeg stepping ff-step; fi
done

echo
echo "Shaped links: tbf (burst 32 kbit, latency 400 ms) to nginx-rtmp or srt-live-transmit in a netns, fixed at ${LINK_KBIT} kbit/s or stepping ${LINK_KBIT} → ${STEP1_KBIT} kbit/s at ${STEP1} s → ${STEP2_KBIT} kbit/s at ${STEP2} s after the publish; 640x360@${FPS} clip, x264 ultrafast/zerolatency, ${BITRATE} kbit/s nominal, ${DURATION} s on air each; farmcast's state folder kept from run to run (its first run: nothing remembered)"
echo
echo "| link kbit/s | program | start kbit/s | frames delivered | delivered | carried 7–10 s after go-live | 7–10 s after → ${STEP1_KBIT} | 7–10 s after → ${STEP2_KBIT} | reconnects | peak RSS |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
echo
echo "(logs and recordings: $OUT)"
