#!/usr/bin/env python3
"""farmcast's benchmark: BENCHMARKS.md, one section per figure.

Sections (`--only NAME[,NAME]` runs some and keeps the others' last figures):

- main: farmcast against gst-launch-1.0 and ffmpeg, same input, same encoder
  settings. Each peer streams the same 1280x720 30 fps clip (generated once,
  replayed in real time) plus a 440 Hz tone, x264 veryfast/zerolatency at
  2500 kbit/s with a keyframe every 2 s and AAC 128k, to a local nginx-rtmp
  for a fixed time. Per run: CPU time (user+sys) and peak RSS from wait4()'s
  rusage; start -> publish accepted (nginx's exec_publish appends
  `date +%s.%N`, a fork+exec of /bin/sh, ~ms); start -> first video frame at
  the server (a thread polls the recording nginx writes for its first H.264
  frame).
- memory: what each part of farmcast costs in peak RSS and CPU: the daemon
  with one thing turned back or on at a time, the pipeline's parts alone
  under gst-launch-1.0 (issue 14; bench/sections_memory.py).
- golive: `press go_live` on the sim socket -> publish accepted (issue 3).
- restart: nginx SIGKILLed and restarted -> first frame again (issue 3).
- tag: `press product:<id>` -> first frame with the lower third (issue 4).
- mqtt: command round trip through a loopback mosquitto (issue 5).
- status: CPU cost of publishing status every second (issue 5).
- uplink: bench/uplink.sh's shaped links, fixed and stepping (issues 8 and 14; root and netns).
- config: `check-config` on a 64 KB file with thousands of problems (issue 12).
- flood: 1,100 junk commands and 1,100 junk pushes at the control plane ->
  memory growth, the next `logs` answer, the link (issue 12).
- fleet: `farmcast fleet push` to 500 simulated boxes -> last applied, tool,
  broker and simulator CPU, bytes per box per status interval (issue 17).
- standby: the daemon's CPU in standby against the same box live (issue 14).
- web: the phone page's CPU cost, preview answer time, tap -> publish (issue 15).
- onair: issue 14's table, every row as measured by this run's sections.

Medians go to markdown. A figure that cannot be measured here (farmcast not
built, exits early, never publishes) reads "n/a" and the reason instead of
failing the whole benchmark.

Standard library only (plus the sibling modules in bench/).
"""

import sys

# No bench/__pycache__ in the work tree.
sys.dont_write_bytecode = True

import argparse  # noqa: E402
import datetime
import glob
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

from common import (AUDIO_KBPS, BITRATE_KBPS, FIGURES, FPS, HEIGHT, KEYFRAME_S, MODULE,
                    WIDTH, X264_VBV_MS, NotAvailable, Nginx, fmt, make_clip, med, run_peer, sim,
                    stop_group, tail, verdict, wait_sim, write_farmcast)
import sections_media
import sections_mqtt
import sections_loop
import sections_fleet
from sections_uplink import uplink_section
import sections_memory
import sections_onair
import sections_web

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ["onair", "main", "memory", "golive", "standby", "restart", "tag", "web", "mqtt",
            "status", "uplink", "config", "flood", "loop", "fleet"]

HEADER = ("| peer | runs | CPU s (user+sys) | CPU % of one core | peak RSS MiB | start → publish ms "
          "| start → first video frame ms | video frames at server | kbit/s at server | note |")


def gst_cmd(clip, url):
    gop = FPS * KEYFRAME_S
    return ["gst-launch-1.0", "-q", "-e",
            "filesrc", f"location={clip}", "!", "y4mdec", "!", "clocksync", "!",
            "videoconvert", "!", "video/x-raw,format=I420", "!",
            # farmcast's own x264enc settings (src/media/encoder.rs), to the letter.
            "x264enc", "speed-preset=veryfast", "tune=zerolatency",
            f"bitrate={BITRATE_KBPS}", f"key-int-max={gop}", f"vbv-buf-capacity={X264_VBV_MS}",
            "rc-lookahead=0", "bframes=0", "!",
            "video/x-h264,profile=main", "!", "h264parse", "!", "queue", "!", "mux.video",
            "audiotestsrc", "is-live=true", "wave=sine", "freq=440", "!",
            "audioconvert", "!", "audioresample", "!",
            "audio/x-raw,rate=48000,channels=2", "!",
            "avenc_aac", f"bitrate={AUDIO_KBPS * 1000}", "!", "aacparse", "!",
            "queue", "!", "mux.audio",
            "flvmux", "name=mux", "streamable=true", "latency=100000000", "!",
            "rtmp2sink", f"location={url}"]


# farmcast's parts (64 KiB clip reads, voaacenc, the table-driven tone) in
# one pipeline: what farmcast would cost without its pipelines' isolation
# (camera and microphone behind inter elements, each destination fed through
# appsrcs). farmcast less this peer is the price of that isolation, net of
# the copy out of y4mdec that farmcast's own clip reader does not make.
ONE_PIPELINE = "gst-one-pipeline"


def one_pipeline_cmd(clip, url):
    argv = gst_cmd(clip, url)
    swap = {f"location={clip}": [f"location={clip}", "blocksize=65536"],
            "wave=sine": ["wave=sine-table", "volume=0.2"], "avenc_aac": ["voaacenc"]}
    return [x for a in argv for x in swap.get(a, [a])]


def ffmpeg_cmd(clip, url):
    gop = FPS * KEYFRAME_S
    # farmcast's VBV buffer, in kbit.
    bufsize = BITRATE_KBPS * X264_VBV_MS // 1000
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
            "-re", "-i", clip,
            "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-b:v", f"{BITRATE_KBPS}k", "-maxrate", f"{BITRATE_KBPS}k",
            "-bufsize", f"{bufsize}k", "-g", str(gop), "-keyint_min", str(gop),
            "-pix_fmt", "yuv420p", "-profile:v", "main",
            "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2",
            "-f", "flv", url]


def go_live_presses(farmcast, workdir, nginx, clip, presses, logdir):
    """Standby, then `press go_live` N times; returns press -> publish in ms."""
    cfg, sock = write_farmcast(workdir, nginx, clip, "golive", autostart=False)
    log = os.path.join(logdir, "golive.log")
    env = dict(os.environ, RUST_LOG="info")
    with open(log, "w") as logf:
        proc = subprocess.Popen([farmcast, "run", "--config", cfg], stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=logf, env=env, start_new_session=True)
    try:
        before = len(nginx.publish_times())
        if not wait_sim(sock, proc):
            raise NotAvailable(f"sim socket never answered: {tail(log)}")
        time.sleep(2)  # let standby settle (pipeline prerolled, if it does that)
        if len(nginx.publish_times()) > before:
            raise NotAvailable("published while in standby")
        results, pairs = [], []
        for _ in range(presses):
            known = len(nginx.publish_times())
            t0 = time.time()
            answer = sim(sock, "press go_live")
            if answer != "ok":
                raise NotAvailable(f"`press go_live` answered {answer!r}")
            deadline = t0 + 15
            while time.time() < deadline and len(nginx.publish_times()) <= known:
                time.sleep(0.002)
            times = nginx.publish_times()[known:]
            if not times:
                raise NotAvailable(f"no publish within 15 s of the press: {tail(log)}")
            results.append((times[0] - t0) * 1000)
            pairs.append((t0, times[0]))
            time.sleep(2)
            answer = sim(sock, "hold go_live 2.5", timeout=15)
            if not answer.startswith("ok"):
                raise NotAvailable(f"`hold go_live 2.5` answered {answer!r}")
            if not nginx.wait_idle(20):
                raise NotAvailable("the show did not end after `hold go_live 2.5`")
            time.sleep(1.5)
        return results, sections_onair.golive_breakdown(log, pairs)
    finally:
        stop_group(proc)


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}, Linux {platform.release()}"


def version(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def binary_stamp(path):
    try:
        mtime = os.path.getmtime(path)
    except OSError:
        return "not built"
    return "built " + datetime.datetime.fromtimestamp(mtime).astimezone().isoformat(timespec="seconds")


def now_iso():
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def main_section(args, run_dir, clip, cmd):
    """The peers table and its targets; also returns farmcast's results for go-live."""
    nginx = Nginx(run_dir)
    peers = [p for p in args.peers.split(",") if p]
    results, reasons = {}, {}
    for peer in peers:
        results[peer] = []
        if peer == "farmcast" and not os.access(args.farmcast, os.X_OK):
            reasons[peer] = f"no binary at {args.farmcast} (make bench builds it)"
    try:
        # Interleaved (run 1 of each peer, then run 2, ...): a noisy minute
        # on a shared machine then costs every peer a run, not one peer its
        # median.
        for i in range(args.runs):
            for peer in peers:
                if peer in reasons:
                    continue
                stream = f"{peer.split('-')[0]}-{i}"
                env, sig = None, signal.SIGINT
                if peer == "gst-launch-1.0":
                    argv = gst_cmd(clip, nginx.url(stream))
                elif peer == ONE_PIPELINE:
                    stream = f"one-{i}"
                    argv = one_pipeline_cmd(clip, nginx.url(stream))
                elif peer == "ffmpeg":
                    argv = ffmpeg_cmd(clip, nginx.url(stream))
                else:
                    cfg, _ = write_farmcast(run_dir, nginx, clip, stream, autostart=True)
                    argv = [args.farmcast, "run", "--config", cfg]
                    env = dict(os.environ, RUST_LOG="info")
                    sig = signal.SIGTERM
                print(f"{peer} run {i + 1}/{args.runs} ...", flush=True)
                try:
                    r = run_peer(peer, argv, sig, args.seconds, nginx, stream, run_dir, env,
                                 on_air=True)
                except NotAvailable as e:
                    reasons[peer] = str(e)[:400]
                    print(f"  n/a: {reasons[peer]}", flush=True)
                    continue
                print("  " + ", ".join(f"{k}={fmt(v, 1)}" for k, v in r.items()), flush=True)
                results[peer].append(r)
    finally:
        nginx.close()

    lines = [
        "## Streaming: farmcast vs gst-launch-1.0 vs ffmpeg", "",
        f"- command: `{cmd}` (runs={args.runs}, seconds={args.seconds})",
        f"- gst-launch-1.0: {version(['gst-launch-1.0', '--version'])}; "
        f"ffmpeg: {version(['ffmpeg', '-version'])}",
        "- farmcast runs with `recording.enabled = false` and `min_bitrate_kbps` at the "
        "bitrate (no climb from a low start) so that it does the same work as the other two",
        "",
        f"Input: {WIDTH}x{HEIGHT} {FPS} fps testsrc2 clip (y4m, replayed in real time) + 440 Hz "
        f"tone. Encoding: x264 veryfast, zerolatency, {BITRATE_KBPS} kbit/s, keyframe every "
        f"{KEYFRAME_S} s, AAC {AUDIO_KBPS}k, FLV to a local nginx-rtmp, each peer stopped "
        f"{args.seconds} s after its first video frame reached the server (so that each "
        "delivers the same frames; its start-up is in its CPU all the same), the peers' runs "
        "interleaved. Figures are medians of the runs. CPU % of one core is over the whole "
        "run, start to stop. CPU and peak "
        "RSS come from wait4() on the peer; publish = nginx exec_publish timestamp; first "
        "frame = first H.264 frame in nginx's recording.",
        "",
        HEADER,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    med_of = {}
    for peer, rows in results.items():
        cpu, rss = med(rows, "cpu_s"), med(rows, "rss_mib")
        med_of[peer] = (cpu, rss)
        note = reasons.get(peer, "")
        if note and rows:
            note = f"only {len(rows)} run(s): " + note
        ran = med(rows, "ran_s")
        pct = None if cpu is None or not ran else 100 * cpu / ran
        lines.append(
            f"| {peer} | {len(rows)} | {fmt(cpu, 2)} | {fmt(pct, 1)} | {fmt(rss, 1)} | "
            f"{fmt(med(rows, 'publish_ms'))} | {fmt(med(rows, 'frame_ms'))} | "
            f"{fmt(med(rows, 'frames'))} | {fmt(med(rows, 'kbps'))} | "
            f"{note.replace('|', '/')} |")
    # The runs themselves: a median of five hides how far apart they were.
    # A run that delivered fewer frames than the others did less work: its CPU
    # is not comparable, and it says so (a clip read that stalled on the disk
    # cost farmcast 83 frames in one run of the 08:26 table).
    frames = sorted(r["frames"] for rows in results.values() for r in rows
                    if r.get("frames") is not None)
    usual = frames[len(frames) // 2] if frames else None

    def run_cpu(r):
        short = usual and r.get("frames") is not None and r["frames"] < 0.97 * usual
        return f"{r['cpu_s']:.2f}" + (f" ({r['frames']:.0f} frames)" if short else "")

    lines += ["", "CPU s of each run, in the order they ran (frames at the server beside a "
              "run that delivered 3% fewer than most): " + "; ".join(
                  f"{peer} " + ", ".join(run_cpu(r) for r in rows)
                  for peer, rows in results.items() if rows) + "."]
    fc, gst = med_of.get("farmcast", (None, None)), med_of.get("gst-launch-1.0", (None, None))
    one, ff = med_of.get(ONE_PIPELINE, (None, None)), med_of.get("ffmpeg", (None, None))
    if fc[0] is not None and one[0] is not None and ff[0] is not None:
        FIGURES["cpu_isolation"] = (fc[0] - one[0], one[0] / ff[0])
        lines += ["", (
            f"`{ONE_PIPELINE}` is farmcast's own parts (64 KiB clip reads, voaacenc, the "
            "table-driven tone, x264 as above) in one gst-launch pipeline: no inter elements "
            "between the sources and the encoder, no appsink/appsrc between the encoder and "
            "the destination (it still copies each frame out of y4mdec, which farmcast's "
            f"clip reader does not). farmcast less it: {fc[0] - one[0]:+.2f} s, what keeping a "
            "stalled camera, a lost microphone and a slow destination from stopping the rest "
            "costs, net of the copy farmcast's reader saves. The same parts in one pipeline "
            f"run at {one[0] / ff[0]:.2f}× ffmpeg.")]
    lines += ["", "Targets:", "", "| target | measured | met |", "| --- | --- | --- |"]

    def row(name, measured, ok):
        lines.append(f"| {name} | {measured} | {verdict(ok)} |")

    if fc[0] is not None and gst[0] is not None:
        ratio = fc[0] / gst[0]
        row("CPU within 5% of gst-launch-1.0", f"{100 * (ratio - 1):+.1f}%", ratio <= 1.05)
    else:
        row("CPU within 5% of gst-launch-1.0", "n/a", None)
    if fc[0] is not None and ff[0] is not None:
        FIGURES["cpu_vs_ffmpeg"] = fc[0] / ff[0]
        row("CPU ≤ ffmpeg", f"{fc[0]:.2f} s vs {ff[0]:.2f} s", fc[0] <= ff[0])
    else:
        row("CPU ≤ ffmpeg", "n/a", None)
    if fc[1] is not None and gst[1] is not None:
        row("peak RSS ≤ gst-launch-1.0", f"{fc[1]:.1f} vs {gst[1]:.1f} MiB", fc[1] <= gst[1])
    else:
        row("peak RSS ≤ gst-launch-1.0", "n/a", None)
    # Issue 14's figure; bench/run.sh --only memory says what each part costs.
    if fc[1] is not None:
        FIGURES["rss_mib"] = fc[1]
        row("peak RSS ≤ 64 MiB", f"{fc[1]:.1f} MiB", fc[1] <= 64)
    else:
        row("peak RSS ≤ 64 MiB", "n/a", None)
    lines.append("")
    return lines


def golive_section(args, run_dir, clip, cmd):
    lines = ["## Go-live (farmcast, issues 3 and 14)", "",
             f"- command: `{cmd}` (presses={args.presses})", ""]
    golive, breakdown, reason = [], [], None
    if not os.access(args.farmcast, os.X_OK):
        reason = f"no binary at {args.farmcast}"
    else:
        nginx = Nginx(os.path.join(run_dir, "golive"))
        print(f"farmcast go-live, {args.presses} presses ...", flush=True)
        try:
            golive, breakdown = go_live_presses(args.farmcast, os.path.join(run_dir, "golive"), nginx,
                                     clip, args.presses, run_dir)
            print("  " + ", ".join(f"{v:.0f} ms" for v in golive), flush=True)
        except NotAvailable as e:
            reason = str(e)[:400]
        finally:
            nginx.close()
    if golive:
        m = statistics.median(golive)
        FIGURES["golive_ms"] = m
        lines += [
            f"Standby (`live.autostart = false`, the main table's {WIDTH}x{HEIGHT} clip and "
            "encode), `press go_live` on the sim socket (the press stamped just before the "
            "socket write; the sim holds the button 80 ms), time to the publish accepted at "
            "nginx (its `exec_publish` appends `date +%s.%N`); show ended with "
            "`hold go_live 2.5` between presses. "
            f"Presses: {', '.join(f'{v:.0f}' for v in golive)} ms; median **{m:.0f} ms**.",
            ""] + sections_onair.breakdown_lines(breakdown) + [
            f"Targets: go-live ≤ 100 ms: {m:.0f} ms — {verdict(m <= 100)}.", ""]
    else:
        lines += [f"n/a: {reason or 'not run'}", "", "Targets: go-live ≤ 100 ms: n/a", ""]
    return lines


def assemble(args, blocks):
    """BENCHMARKS.md: a header, then the sections in order; with --only, the
    sections not run keep what the existing file had."""
    old = {}
    if args.only and os.path.exists(args.out):
        with open(args.out) as f:
            text = f.read()
        for m in re.finditer(r"<!-- section: (\w+) -->\n(.*?)<!-- end: \1 -->\n", text, re.S):
            old[m.group(1)] = m.group(2)
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/run.sh` (`make bench`); every figure below was measured by it. "
        "Do not edit by hand: rerun (`bench/run.sh --only SECTION` reruns one section and "
        "keeps the others). Each section says the command and date that produced it.",
        "",
        f"- machine: {machine()}",
        f"- sections: {', '.join(SECTIONS)}",
        "",
    ]
    for name in SECTIONS:
        if name in blocks:
            body = "\n".join(blocks[name]).rstrip("\n") + "\n"
        elif name in old:
            body = old[name]
        else:
            continue
        lines += [f"<!-- section: {name} -->", body + f"<!-- end: {name} -->", ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))


def config_section(fc, run_dir, runs, cmd):
    """`farmcast check-config` on a 64 KB file with thousands of problems in its
    values (issue 12): the walk, the value checks and the line lookup that a
    fleet push goes through too. Whole process, start to exit."""
    lines = ["## A 64 KB config with thousands of problems (issue 12)", "",
             f"- command: `{cmd}` (runs={runs})", ""]
    path = os.path.join(run_dir, "hostile.toml")
    text, n = "", 0
    while len(text) < 64 * 1024:
        text += (f'[[products]]\nid = "p {n}"\nname = "n"\nunit = "g"\nunit_price = "x"\n'
                 f'currency = "cny"\nbutton_pin = 99\n')
        n += 1
    with open(path, "w") as f:
        f.write(text)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = subprocess.run([fc, "check-config", path], capture_output=True, text=True)
        times.append((time.perf_counter() - t0) * 1000)
    tail = (out.stderr.strip().splitlines() or ["(no output)"])[-2]
    m = statistics.median(times)
    return lines + [
        f"{len(text)} bytes, {n} products, 5 bad values each; exit {out.returncode}, "
        f"reported: `{tail[:120]}`", "",
        "| runs (ms) | median (ms) |", "| --- | --- |",
        f"| {', '.join(f'{t:.1f}' for t in times)} | **{m:.1f}** |", "",
        f"Targets: rejected in well under 100 ms (was 45 s through a fleet push): "
        f"{'met' if m < 100 else 'NOT met'}", ""]


def stamp(args, block):
    """Adds the date and the farmcast binary's build time under the command line."""
    return block[:3] + [f"- date: {now_iso()}; farmcast: `{args.farmcast}` "
                        f"({binary_stamp(args.farmcast)})"] + block[3:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    env = os.environ.get
    ap.add_argument("--runs", type=int, default=int(env("BENCH_RUNS", 5)))
    ap.add_argument("--seconds", type=int, default=int(env("BENCH_SECONDS", 20)))
    ap.add_argument("--presses", type=int, default=int(env("BENCH_PRESSES", 5)))
    ap.add_argument("--restarts", type=int, default=int(env("BENCH_RESTARTS", 3)))
    ap.add_argument("--tags", type=int, default=int(env("BENCH_TAGS", 5)))
    ap.add_argument("--rtt-logs", type=int, default=int(env("BENCH_RTT_LOGS", 20)))
    ap.add_argument("--rtt-golive", type=int, default=int(env("BENCH_RTT_GOLIVE", 5)))
    ap.add_argument("--status-runs", type=int, default=int(env("BENCH_STATUS_RUNS", 3)))
    ap.add_argument("--status-seconds", type=int, default=int(env("BENCH_STATUS_SECONDS", 20)))
    ap.add_argument("--flood-runs", type=int, default=int(env("BENCH_FLOOD_RUNS", 3)))
    ap.add_argument("--uplink-seconds", type=int, default=int(env("BENCH_UPLINK_SECONDS", 45)))
    ap.add_argument("--uplink-runs", type=int, default=int(env("BENCH_UPLINK_RUNS", 3)))
    ap.add_argument("--loop-runs", type=int, default=int(env("BENCH_LOOP_RUNS", 3)))
    ap.add_argument("--loop-seconds", type=int, default=int(env("BENCH_LOOP_SECONDS", 30)))
    ap.add_argument("--loop-files", type=int, default=int(env("BENCH_LOOP_FILES", 20000)))
    ap.add_argument("--fleet-boxes", type=int, default=int(env("BENCH_FLEET_BOXES", 500)))
    ap.add_argument("--standby-runs", type=int, default=int(env("BENCH_STANDBY_RUNS", 3)))
    ap.add_argument("--standby-seconds", type=int,
                    default=int(env("BENCH_STANDBY_SECONDS", 10)))
    ap.add_argument("--web-seconds", type=int, default=int(env("BENCH_WEB_SECONDS", 10)))
    ap.add_argument("--web-taps", type=int, default=int(env("BENCH_WEB_TAPS", 3)))
    ap.add_argument("--fleet-runs", type=int, default=int(env("BENCH_FLEET_RUNS", 3)))
    ap.add_argument("--memory-runs", type=int, default=int(env("BENCH_MEMORY_RUNS", 3)))
    ap.add_argument("--memory-seconds", type=int, default=int(env("BENCH_MEMORY_SECONDS", 20)))
    ap.add_argument("--loop-before", default=env("BENCH_LOOP_BEFORE", ""),
                    help="a farmcast built from the base commit, for the loop's `before` row")
    ap.add_argument("--only", default=env("BENCH_ONLY", ""),
                    help="comma-separated sections: " + ",".join(SECTIONS))
    ap.add_argument("--farmcast", default=env(
        "FARMCAST", os.path.join(ROOT, "target", "release", "farmcast")))
    ap.add_argument("--peers", default=f"farmcast,gst-launch-1.0,{ONE_PIPELINE},ffmpeg")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out"))
    args = ap.parse_args()
    args.farmcast = os.path.abspath(args.farmcast)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or SECTIONS
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {SECTIONS}")

    for tool, pkg in [("nginx", "nginx libnginx-mod-rtmp"), ("ffmpeg", "ffmpeg"),
                      ("gst-launch-1.0", "gstreamer1.0-tools"), ("mosquitto", "mosquitto")]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: install the Debian package(s) {pkg}")
    if not os.path.exists(MODULE):
        raise SystemExit(f"{MODULE} missing: install libnginx-mod-rtmp")

    cmd = ("make bench" if env("MAKELEVEL") else
           "bench/run.sh " + " ".join(sys.argv[1:])).strip()
    os.makedirs(args.workdir, exist_ok=True)
    clip = os.path.join(args.workdir, "clip.y4m")
    # Long enough that no peer reaches its end (gst-launch cannot loop a file);
    # about 1 GB of y4m, so only made when a section that plays it runs.
    if {"main", "memory", "golive", "status", "standby", "web"} & set(chosen):
        make_clip(clip, max(args.seconds, args.status_seconds, args.memory_seconds) + 3)
    # Keep only the latest run's recordings and logs for inspection.
    for old in glob.glob(os.path.join(args.workdir, "run-*")):
        shutil.rmtree(old, ignore_errors=True)
    run_dir = tempfile.mkdtemp(prefix="run-", dir=args.workdir)
    fc = args.farmcast
    have_fc = os.access(fc, os.X_OK)
    t_all = time.time()
    blocks = {}
    for name in chosen:
        t0 = time.time()
        print(f"== {name}", flush=True)
        if name == "main":
            block = main_section(args, run_dir, clip, cmd)
        elif name == "golive":
            block = golive_section(args, run_dir, clip, cmd)
        elif name == "onair":
            continue  # written last, from what the other sections measured
        elif name == "memory" and have_fc:
            block = sections_memory.memory_section(fc, run_dir, clip, args.memory_runs,
                                                   args.memory_seconds, cmd)
        elif not have_fc and name != "uplink":
            block = [f"## {name}", "", f"- command: `{cmd}`", "",
                     f"n/a: no binary at {fc} (make bench builds it)", ""]
        elif name == "restart":
            block = sections_media.restart_section(fc, run_dir, args.workdir, args.restarts, cmd)
        elif name == "tag":
            block = sections_media.tag_section(fc, run_dir, args.workdir, args.tags, cmd)
        elif name == "mqtt":
            small = os.path.join(args.workdir, "clip-360p.y4m")
            make_clip(small, 10, size="640x360")
            block = sections_mqtt.rtt_section(fc, run_dir, small, args.rtt_logs,
                                              args.rtt_golive, cmd)
        elif name == "config":
            block = config_section(fc, run_dir, max(args.runs, 5), cmd)
        elif name == "flood":
            block = sections_mqtt.flood_section(fc, run_dir, args.flood_runs, cmd)
        elif name == "loop":
            block = sections_loop.loop_section(fc, args.loop_before, run_dir, args.workdir,
                                               args.loop_runs, args.loop_seconds,
                                               args.loop_files, cmd)
        elif name == "fleet":
            block = sections_fleet.fleet_section(fc, run_dir, args.fleet_boxes, args.fleet_runs,
                                                 cmd)
        elif name == "standby":
            block = sections_onair.standby_section(fc, run_dir, clip, args.standby_runs,
                                                   args.standby_seconds, cmd,
                                                   f"{WIDTH}x{HEIGHT}")
        elif name == "web":
            block = sections_web.web_section(fc, run_dir, clip, args.web_seconds, args.web_taps,
                                             cmd, f"{WIDTH}x{HEIGHT}")
        elif name == "status":
            block = sections_mqtt.status_section(fc, run_dir, clip, args.status_runs,
                                                 args.status_seconds, cmd)
        else:
            block = uplink_section(args, cmd)
        blocks[name] = stamp(args, block)
        print("\n".join(l for l in block if l.startswith(("Targets", "n/a", "Skipped"))),
              f"\n   ({time.time() - t0:.0f} s)", flush=True)
    if "onair" in chosen:
        blocks["onair"] = stamp(args, sections_onair.onair_section(cmd))
    assemble(args, blocks)
    print(f"wrote {args.out} in {time.time() - t_all:.0f} s")


if __name__ == "__main__":
    main()
