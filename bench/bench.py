#!/usr/bin/env python3
"""farmcast against gst-launch-1.0 and ffmpeg, same input, same encoder settings.

Each peer streams the same 1280x720 30 fps clip (generated once, replayed in
real time) plus a 440 Hz tone, x264 veryfast/zerolatency at 2500 kbit/s with a
keyframe every 2 s and AAC 128k, to a local nginx-rtmp for a fixed time. For
every run we record:

- CPU time (user+sys) and peak RSS of the peer, from wait4()'s rusage;
- start -> publish accepted: nginx's exec_publish appends `date +%s.%N` when
  the server accepts the publish (includes a fork+exec of /bin/sh, ~ms);
- start -> first video frame at the server: a thread polls the recording
  nginx writes and notes when its first H.264 frame (FLV video tag, AVC NALU)
  appears.

Medians of N runs go to a markdown table (BENCHMARKS.md). A peer that cannot
run here (farmcast not built yet, exits early, never publishes) gets "n/a"
and the reason instead of failing the whole benchmark.

Standard library only.
"""

import argparse
import datetime
import glob
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

WIDTH, HEIGHT, FPS = 1280, 720, 30
BITRATE_KBPS, KEYFRAME_S, AUDIO_KBPS = 2500, 2, 128


HEADER = ("| peer | runs | CPU s (user+sys) | CPU % of one core | peak RSS MiB | start → publish ms "
          "| start → first video frame ms | video frames at server | kbit/s at server | note |")


class NotAvailable(Exception):
    """A peer that cannot be measured here; the message is the reason."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.02)
    return False


class Nginx:
    """nginx-rtmp on free ports; app `bench` records and logs publish times."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "nginx")
        self.rec = os.path.join(self.dir, "rec")
        os.makedirs(self.rec, exist_ok=True)
        os.chmod(self.rec, 0o777)
        self.port, self.http = free_port(), free_port()
        self.publog = os.path.join(self.dir, "publish.log")
        d = self.dir
        conf = f"""load_module {MODULE};
daemon off; master_process on; user root; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/error.log info;
events {{ worker_connections 128; }}
rtmp {{ server {{ listen 127.0.0.1:{self.port}; chunk_size 4096;
  application bench {{ live on; record all; record_path {self.rec}; record_unique on;
    exec_publish /bin/sh -c "date +%s.%N >> {self.publog}"; }} }} }}
http {{ access_log off; client_body_temp_path {d}/t1; proxy_temp_path {d}/t2;
  fastcgi_temp_path {d}/t3; uwsgi_temp_path {d}/t4; scgi_temp_path {d}/t5;
  server {{ listen 127.0.0.1:{self.http}; location /stat {{ rtmp_stat all; }} }} }}
"""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(
            ["nginx", "-p", d, "-c", os.path.join(d, "nginx.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        if not (wait_tcp(self.port, 10) and wait_tcp(self.http, 5)):
            self.close()
            raise SystemExit("nginx did not start: " + self.error_log())

    def url(self, stream):
        return f"rtmp://127.0.0.1:{self.port}/bench/{stream}"

    def base_url(self):
        return f"rtmp://127.0.0.1:{self.port}/bench"

    def publish_times(self):
        try:
            with open(self.publog) as f:
                return [float(x) for x in f.read().split()]
        except FileNotFoundError:
            return []

    def is_publishing(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/stat", timeout=2) as r:
                return b"<publishing/>" in r.read()
        except OSError:
            return False

    def wait_idle(self, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.is_publishing():
                return True
            time.sleep(0.05)
        return False

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def first_video_frame_offset(path):
    """Byte offset just past the first FLV video tag that carries a frame
    (AVC NALU, not the sequence header), or None if not (yet) in the file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < 13 or data[:3] != b"FLV":
        return None
    pos = int.from_bytes(data[5:9], "big") + 4
    while pos + 11 <= len(data):
        tag_type = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        end = pos + 11 + size
        if end > len(data):
            return None
        if tag_type == 9 and size >= 2 and (data[pos + 11] & 0x0F) == 7 and data[pos + 12] == 1:
            return end
        pos = end + 4
    return None


class FrameWatcher(threading.Thread):
    """Polls the recordings of `stream` and notes when a video frame lands."""

    def __init__(self, rec_dir, stream):
        super().__init__(daemon=True)
        self.pattern = os.path.join(rec_dir, f"{stream}-*.flv")
        self.seen_at = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and self.seen_at is None:
            for path in glob.glob(self.pattern):
                if first_video_frame_offset(path) is not None:
                    self.seen_at = time.time()
                    break
            time.sleep(0.005)


def gst_cmd(clip, url):
    gop = FPS * KEYFRAME_S
    return ["gst-launch-1.0", "-q", "-e",
            "filesrc", f"location={clip}", "!", "y4mdec", "!", "clocksync", "!",
            "videoconvert", "!", "video/x-raw,format=I420", "!",
            "x264enc", "speed-preset=veryfast", "tune=zerolatency",
            f"bitrate={BITRATE_KBPS}", f"key-int-max={gop}", "!",
            "video/x-h264,profile=high", "!", "h264parse", "!", "queue", "!", "mux.video",
            "audiotestsrc", "is-live=true", "wave=sine", "freq=440", "!",
            "audioconvert", "!", "audioresample", "!",
            "audio/x-raw,rate=48000,channels=2", "!",
            "avenc_aac", f"bitrate={AUDIO_KBPS * 1000}", "!", "aacparse", "!",
            "queue", "!", "mux.audio",
            "flvmux", "name=mux", "streamable=true", "latency=100000000", "!",
            "rtmp2sink", f"location={url}"]


def ffmpeg_cmd(clip, url):
    gop = FPS * KEYFRAME_S
    # x264enc's default CBR buffer is 600 ms; match it.
    bufsize = BITRATE_KBPS * 600 // 1000
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
            "-re", "-i", clip,
            "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-b:v", f"{BITRATE_KBPS}k", "-maxrate", f"{BITRATE_KBPS}k",
            "-bufsize", f"{bufsize}k", "-g", str(gop), "-keyint_min", str(gop),
            "-pix_fmt", "yuv420p", "-profile:v", "high",
            "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2",
            "-f", "flv", url]


def farmcast_config(workdir, source, key, autostart):
    sock = os.path.join(workdir, "sim.sock")
    cfg = f"""device_id = "bench"

[video]
source = "{source}"
width = {WIDTH}
height = {HEIGHT}
framerate = {FPS}
bitrate_kbps = {BITRATE_KBPS}
encoder = "x264enc"
x264_preset = "veryfast"
keyframe_interval_s = {KEYFRAME_S}

[audio]
source = "test"
bitrate_kbps = {AUDIO_KBPS}

[live]
autostart = {"true" if autostart else "false"}

[recording]
enabled = false
dir = "{os.path.join(workdir, "recordings")}"

[gpio]
backend = "sim"
sim_socket = "{sock}"

[mqtt]
enabled = false
"""
    return cfg, sock


def write_farmcast(workdir, nginx, clip, key, autostart):
    cfg, sock = farmcast_config(workdir, f"file:{clip}", key, autostart)
    cfg += f'\n[[destinations]]\nname = "bench"\nurl = "{nginx.base_url()}"\nkey = "{key}"\n'
    path = os.path.join(workdir, f"farmcast-{key}.toml")
    with open(path, "w") as f:
        f.write(cfg)
    if os.path.exists(sock):
        os.unlink(sock)
    return path, sock


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def run_peer(name, argv, stop_signal, seconds, nginx, stream, logdir, env=None):
    """Runs one peer for `seconds` and returns its measurements."""
    known = len(nginx.publish_times())
    watcher = FrameWatcher(nginx.rec, stream)
    log = os.path.join(logdir, f"{stream}.log")
    with open(log, "w") as logf:
        t0 = time.time()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                stderr=logf, env=env, start_new_session=True)
        watcher.start()
        deadline = t0 + seconds
        status = None
        while time.time() < deadline:
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            status = None
            time.sleep(0.05)
        if status is not None:
            watcher.stop.set()
            raise NotAvailable(f"{name} exited with status {status} after "
                               f"{time.time() - t0:.1f} s: {tail(log)}")
        os.kill(proc.pid, stop_signal)
        wait_end = time.time() + 15
        rusage = None
        while time.time() < wait_end:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rusage = ru
                break
            time.sleep(0.05)
        if rusage is None:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = status
    watcher.stop.set()
    watcher.join(1)
    nginx.wait_idle()
    times = nginx.publish_times()[known:]
    if not times:
        raise NotAvailable(f"{name} never published in {seconds} s: {tail(log)}")
    frame_ms = (watcher.seen_at - t0) * 1000 if watcher.seen_at else None
    if frame_ms is None:
        raise NotAvailable(f"{name} published but no video frame reached the server: {tail(log)}")
    return {
        "cpu_s": rusage.ru_utime + rusage.ru_stime,
        "rss_mib": rusage.ru_maxrss / 1024,
        "publish_ms": (times[0] - t0) * 1000,
        "frame_ms": frame_ms,
        "frames": float(count_video_packets(glob.glob(os.path.join(nginx.rec, f"{stream}-*.flv")))),
        "kbps": recorded_kbps(glob.glob(os.path.join(nginx.rec, f"{stream}-*.flv"))),
    }


def count_video_packets(paths):
    """Video frames the server recorded for one run (all its files)."""
    total = 0
    for path in paths:
        out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                              "-count_packets", "-show_entries", "stream=nb_read_packets",
                              "-of", "csv=p=0", path], capture_output=True, text=True)
        try:
            total += int(out.stdout.strip().split(",")[0])
        except ValueError:
            pass
    return total


def recorded_kbps(paths):
    """Average bit rate of what the server recorded (audio + video)."""
    size, duration = 0, 0.0
    for path in paths:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                              "-of", "csv=p=0", path], capture_output=True, text=True)
        try:
            duration += float(out.stdout.strip())
            size += os.path.getsize(path)
        except (ValueError, OSError):
            pass
    return size * 8 / duration / 1000 if duration > 0 else None


def sim(sock, line, timeout=10):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock)
        s.sendall((line + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            buf += chunk
        return buf.decode(errors="replace").strip()


def wait_sim(sock, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            sim(sock, "led tally", timeout=2)
            return True
        except OSError:
            time.sleep(0.05)
    return False


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
        results = []
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
            time.sleep(2)
            answer = sim(sock, "hold go_live 2.5", timeout=15)
            if not answer.startswith("ok"):
                raise NotAvailable(f"`hold go_live 2.5` answered {answer!r}")
            if not nginx.wait_idle(20):
                raise NotAvailable("the show did not end after `hold go_live 2.5`")
            time.sleep(1.5)
        return results
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def make_clip(path, seconds):
    if os.path.exists(path) and os.path.exists(path + ".done"):
        with open(path + ".done") as f:
            if f.read().strip() == str(seconds):
                return
    print(f"generating {path} ({seconds} s of {WIDTH}x{HEIGHT}@{FPS})", flush=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}", "-t", str(seconds),
                    "-pix_fmt", "yuv420p", path], check=True)
    with open(path + ".done", "w") as f:
        f.write(str(seconds))


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


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    return "n/a" if v is None else f"{v:.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", 3)))
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 20)))
    ap.add_argument("--presses", type=int, default=int(os.environ.get("BENCH_PRESSES", 5)))
    ap.add_argument("--farmcast", default=os.environ.get(
        "FARMCAST", os.path.join(ROOT, "target", "release", "farmcast")))
    ap.add_argument("--peers", default="farmcast,gst-launch-1.0,ffmpeg")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--workdir", default=os.path.join(ROOT, "bench", "out"))
    args = ap.parse_args()

    for tool, pkg in [("nginx", "nginx libnginx-mod-rtmp"), ("ffmpeg", "ffmpeg"),
                      ("gst-launch-1.0", "gstreamer1.0-tools")]:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: install the Debian package(s) {pkg}")
    if not os.path.exists(MODULE):
        raise SystemExit(f"{MODULE} missing: install libnginx-mod-rtmp")

    os.makedirs(args.workdir, exist_ok=True)
    clip = os.path.join(args.workdir, "clip.y4m")
    # Long enough that no peer reaches its end (gst-launch cannot loop a file).
    make_clip(clip, args.seconds + 3)
    # Keep only the latest run's recordings and logs for inspection.
    for old in glob.glob(os.path.join(args.workdir, "run-*")):
        shutil.rmtree(old, ignore_errors=True)
    run_dir = tempfile.mkdtemp(prefix="run-", dir=args.workdir)
    nginx = Nginx(run_dir)
    peers = [p for p in args.peers.split(",") if p]
    results, reasons = {}, {}
    golive, golive_reason = [], None
    try:
        for peer in peers:
            results[peer] = []
            if peer == "farmcast" and not os.access(args.farmcast, os.X_OK):
                reasons[peer] = f"no binary at {args.farmcast} (make bench builds it)"
                continue
            for i in range(args.runs):
                stream = f"{peer.split('-')[0]}-{i}"
                env, sig = None, signal.SIGINT
                if peer == "gst-launch-1.0":
                    argv = gst_cmd(clip, nginx.url(stream))
                elif peer == "ffmpeg":
                    argv = ffmpeg_cmd(clip, nginx.url(stream))
                else:
                    cfg, _ = write_farmcast(run_dir, nginx, clip, stream, autostart=True)
                    argv = [args.farmcast, "run", "--config", cfg]
                    env = dict(os.environ, RUST_LOG="info")
                    sig = signal.SIGTERM
                print(f"{peer} run {i + 1}/{args.runs} ...", flush=True)
                try:
                    r = run_peer(peer, argv, sig, args.seconds, nginx, stream, run_dir, env)
                except NotAvailable as e:
                    reasons[peer] = str(e)[:400]
                    print(f"  n/a: {reasons[peer]}", flush=True)
                    break
                print("  " + ", ".join(f"{k}={fmt(v, 1)}" for k, v in r.items()), flush=True)
                results[peer].append(r)
        if "farmcast" in peers:
            if "farmcast" in reasons:
                golive_reason = "farmcast row is n/a"
            else:
                print(f"farmcast go-live, {args.presses} presses ...", flush=True)
                try:
                    golive = go_live_presses(args.farmcast, run_dir, nginx, clip,
                                             args.presses, run_dir)
                    print("  " + ", ".join(f"{v:.0f} ms" for v in golive), flush=True)
                except NotAvailable as e:
                    golive_reason = str(e)[:400]
                    print(f"  n/a: {golive_reason}", flush=True)
    finally:
        nginx.close()

    write_report(args, results, reasons, golive, golive_reason)
    print(f"wrote {args.out}")


def write_report(args, results, reasons, golive, golive_reason):
    cmd = "make bench" if os.environ.get("MAKELEVEL") else "bench/run.sh " + " ".join(sys.argv[1:])
    lines = [
        "# Benchmarks",
        "",
        "Written by `bench/run.sh` (`make bench`); every figure below was measured by it. "
        "Do not edit by hand: rerun.",
        "",
        f"- command: `{cmd.strip()}` (runs={args.runs}, seconds={args.seconds}, presses={args.presses})",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        f"- gst-launch-1.0: {version(['gst-launch-1.0', '--version'])}; ffmpeg: {version(['ffmpeg', '-version'])}",
        f"- farmcast: `{args.farmcast}` ({binary_stamp(args.farmcast)}), run with "
        "`recording.enabled = false` so that it does the same work as the other two",
        "",
        f"Input: {WIDTH}x{HEIGHT} {FPS} fps testsrc2 clip (y4m, replayed in real time) + 440 Hz tone. "
        f"Encoding: x264 veryfast, zerolatency, {BITRATE_KBPS} kbit/s, keyframe every {KEYFRAME_S} s, "
        f"AAC {AUDIO_KBPS}k, FLV to a local nginx-rtmp, each peer stopped {args.seconds} s after it was started. "
        "Figures are medians of the runs. CPU and peak RSS come from wait4() on the peer; "
        "publish = nginx exec_publish timestamp; first frame = first H.264 frame in nginx's recording.",
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
        pct = None if cpu is None else 100 * cpu / args.seconds
        lines.append(
            f"| {peer} | {len(rows)} | {fmt(cpu, 2)} | {fmt(pct, 1)} | {fmt(rss, 1)} | "
            f"{fmt(med(rows, 'publish_ms'))} | {fmt(med(rows, 'frame_ms'))} | "
            f"{fmt(med(rows, 'frames'))} | {fmt(med(rows, 'kbps'))} | "
            f"{note.replace('|', '/')} |")
    lines += ["", "## Go-live (farmcast)", ""]
    if golive:
        lines.append(f"Standby (`live.autostart = false`), `press go_live` on the sim socket, "
                     f"time to the publish accepted at nginx; show ended with `hold go_live 2.5` "
                     f"between presses. Presses: {', '.join(f'{v:.0f}' for v in golive)} ms; "
                     f"median **{statistics.median(golive):.0f} ms**.")
    else:
        lines.append(f"n/a: {golive_reason or 'not run'}")

    lines += ["", "## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    fc = med_of.get("farmcast", (None, None))
    gst = med_of.get("gst-launch-1.0", (None, None))
    ff = med_of.get("ffmpeg", (None, None))

    def row(name, measured, ok):
        verdict = "n/a" if ok is None else ("yes" if ok else "**no**")
        lines.append(f"| {name} | {measured} | {verdict} |")

    if fc[0] is not None and gst[0] is not None:
        ratio = fc[0] / gst[0]
        row("CPU within 5% of gst-launch-1.0", f"{100 * (ratio - 1):+.1f}%", ratio <= 1.05)
    else:
        row("CPU within 5% of gst-launch-1.0", "n/a", None)
    if fc[0] is not None and ff[0] is not None:
        row("CPU ≤ ffmpeg", f"{fc[0]:.2f} s vs {ff[0]:.2f} s", fc[0] <= ff[0])
    else:
        row("CPU ≤ ffmpeg", "n/a", None)
    if fc[1] is not None and gst[1] is not None:
        row("peak RSS ≤ gst-launch-1.0", f"{fc[1]:.1f} vs {gst[1]:.1f} MiB", fc[1] <= gst[1])
    else:
        row("peak RSS ≤ gst-launch-1.0", "n/a", None)
    if golive:
        m = statistics.median(golive)
        row("go-live < 300 ms", f"{m:.0f} ms", m < 300)
    else:
        row("go-live < 300 ms", "n/a", None)
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines[lines.index(HEADER):]))


if __name__ == "__main__":
    main()
