#!/usr/bin/env bash
# farmcast's benchmark; writes BENCHMARKS.md, one section per figure (see
# bench/bench.py for what each measures and how):
#   main     farmcast vs gst-launch-1.0 vs farmcast's parts in one gst-launch pipeline vs ffmpeg, same clip and encoder settings
#   memory   what each part costs in peak RSS and CPU        (issue 14)
#   golive   `press go_live` -> publish accepted            (issue 3)
#   restart  ingest server SIGKILLed + restarted -> frames again (issue 3)
#   tag      `press product:<id>` -> first frame with the lower third (issue 4)
#   mqtt     command round trip through a loopback mosquitto (issue 5)
#   status   CPU cost of publishing status every second      (issue 5)
#   uplink   bench/uplink.sh: fixed and stepping shaped links, farmcast vs ffmpeg (issues 8, 14; root + ip netns)
#   config   `check-config` on a 64 KB file with thousands of problems (issue 12)
#   flood    1,100 junk commands + 1,100 junk pushes over MQTT: memory, `logs`, link (issue 12)
#   loop     the driver loop's longest turn: camera restarts, status 1/s, 20,000 recordings (issue 13)
#   fleet    `farmcast fleet push` to 500 simulated boxes -> last applied, CPU, bytes/box (issue 17)
#   standby  CPU in standby against live, same box (issue 14)
#   web      the phone page: CPU with a phone watching, preview answer, tap -> publish (issue 15)
#   onair    issue 14's table, each row as this run measured it (written last)
# Options (or env):
#   --only SECTION[,SECTION]  run only these; the others keep their last figures (BENCH_ONLY)
#   --runs N (BENCH_RUNS, 3) --seconds S (BENCH_SECONDS, 20)   main table
#   --memory-runs N (BENCH_MEMORY_RUNS, 3) --memory-seconds S (BENCH_MEMORY_SECONDS, 20)
#   --presses P (BENCH_PRESSES, 5)                             golive
#   --restarts N (BENCH_RESTARTS, 3)                           restart
#   --tags N (BENCH_TAGS, 5)                                   tag
#   --rtt-logs N (BENCH_RTT_LOGS, 20) --rtt-golive N (BENCH_RTT_GOLIVE, 5)   mqtt
#   --status-runs N (BENCH_STATUS_RUNS, 3) --status-seconds S (BENCH_STATUS_SECONDS, 20)
#   --uplink-seconds S (BENCH_UPLINK_SECONDS, 45)
#   --flood-runs N (BENCH_FLOOD_RUNS, 3)                       flood
#   --loop-runs N (BENCH_LOOP_RUNS, 3) --loop-seconds S (BENCH_LOOP_SECONDS, 30)
#   --loop-files N (BENCH_LOOP_FILES, 20000) --loop-before PATH (BENCH_LOOP_BEFORE)   loop
#   --fleet-boxes N (BENCH_FLEET_BOXES, 500) --fleet-runs N (BENCH_FLEET_RUNS, 3)   fleet
#   --standby-runs N (BENCH_STANDBY_RUNS, 3) --standby-seconds S (BENCH_STANDBY_SECONDS, 10)   standby
#   --web-seconds S (BENCH_WEB_SECONDS, 10) --web-taps N (BENCH_WEB_TAPS, 3)   web
#   --farmcast PATH (FARMCAST, default target/release/farmcast)
#   --peers farmcast,gst-launch-1.0,ffmpeg   --out FILE (BENCHMARKS.md)
# Smallest end-to-end check (about 3 minutes):
#   bench/run.sh --runs 1 --seconds 8 --presses 2 --restarts 1 --tags 2 --rtt-logs 5 \
#     --rtt-golive 1 --status-runs 1 --status-seconds 8 --uplink-seconds 15 --flood-runs 1 \
#     --fleet-boxes 50 --fleet-runs 1 --memory-runs 1 --memory-seconds 8 --out /tmp/x.md
set -euo pipefail
cd "$(dirname "$0")/.."
# The default binary is built from this tree first: a stale release build
# once measured the previous session's code.
case " $* " in
    *" --farmcast "*) ;;
    *) [ -n "${FARMCAST:-}" ] || cargo build --release --locked --bin farmcast >&2 ;;
esac
PYTHONDONTWRITEBYTECODE=1 exec python3 bench/bench.py "$@"
