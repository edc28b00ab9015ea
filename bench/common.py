"""What every benchmark section shares: a local nginx-rtmp that records and
logs publish times, readers of its FLV recordings, the sim socket, clips,
farmcast configs and processes. Standard library only.
"""

import glob
import os
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.request

MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"

WIDTH, HEIGHT, FPS = 1280, 720, 30

# Figures the sections of one run measured, by name, for the `onair` summary
# (bench/sections_onair.py): only what this invocation measured.
FIGURES = {}
BITRATE_KBPS, KEYFRAME_S, AUDIO_KBPS = 2500, 2, 128
# farmcast's x264enc vbv-buf-capacity (src/media/encoder.rs), given to every peer.
X264_VBV_MS = 300


class NotAvailable(Exception):
    """A figure that cannot be measured here; the message is the reason."""


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
    """nginx-rtmp on free ports; app `bench` records and logs publish times.

    `kill()` + `start()` bring it back on the same ports (the restart figure)."""

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
        self.proc = None
        self.start()
        if not (wait_tcp(self.port, 10) and wait_tcp(self.http, 5)):
            self.close()
            raise SystemExit("nginx did not start: " + self.error_log())

    def start(self):
        """Starts nginx (leader of its own process group) and returns at once."""
        self.proc = subprocess.Popen(
            ["nginx", "-p", self.dir, "-c", os.path.join(self.dir, "nginx.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)

    def kill(self):
        """SIGKILL to the master and its worker: a server that dies, not one that stops."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None

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

    def wait_publish(self, known, timeout):
        """Epoch time of publish number `known` (0-based), or None after `timeout`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            times = self.publish_times()
            if len(times) > known:
                return times[known]
            time.sleep(0.002)
        return None

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

    def recordings(self, stream):
        return sorted(glob.glob(os.path.join(self.rec, f"{stream}-*.flv")))

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def close(self):
        self.kill()


class FlvVideo:
    """Reads a growing FLV recording incrementally: the timestamps (ms) of
    its video frames (AVC NALU tags, not the sequence header), in order."""

    def __init__(self, path):
        self.path = path
        self.pos = None
        self.pts = []

    def poll(self):
        """Reads what was appended since the last call; returns the frame count."""
        try:
            with open(self.path, "rb") as f:
                if self.pos is None:
                    head = f.read(13)
                    if len(head) < 13 or head[:3] != b"FLV":
                        return 0
                    self.pos = int.from_bytes(head[5:9], "big") + 4
                f.seek(self.pos)
                data = f.read()
        except OSError:
            return len(self.pts)
        at = 0
        while at + 11 <= len(data):
            tag_type = data[at] & 0x1F
            size = int.from_bytes(data[at + 1:at + 4], "big")
            end = at + 11 + size
            if end + 4 > len(data):
                break
            if tag_type == 9 and size >= 2 and (data[at + 11] & 0x0F) == 7 and data[at + 12] == 1:
                ts = int.from_bytes(data[at + 4:at + 7], "big") | (data[at + 7] << 24)
                self.pts.append(ts)
            at = end + 4
        self.pos += at
        return len(self.pts)


def first_video_frame_offset(path):
    """True-ish (the frame count) once the file holds a video frame, else None."""
    n = FlvVideo(path).poll()
    return n or None


class FrameWatcher(threading.Thread):
    """Polls the recordings of `stream` and notes when a video frame lands
    in one that is not in `known` (files present before)."""

    def __init__(self, rec_dir, stream, known=()):
        super().__init__(daemon=True)
        self.pattern = os.path.join(rec_dir, f"{stream}-*.flv")
        self.known = set(known)
        self.seen_at = None
        self.path = None
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set() and self.seen_at is None:
            for path in glob.glob(self.pattern):
                if path not in self.known and first_video_frame_offset(path) is not None:
                    self.seen_at = time.time()
                    self.path = path
                    break
            time.sleep(0.005)


def wait_new_frame(nginx, stream, known, timeout):
    """Polls in the caller's thread; (epoch time, path) of the first video
    frame in a recording not in `known`, or (None, None)."""
    w = FrameWatcher(nginx.rec, stream, known)
    w.start()
    w.join(timeout)
    w.stop.set()
    return w.seen_at, w.path


def farmcast_config(workdir, source, key, autostart, width=WIDTH, height=HEIGHT,
                    preset="veryfast", bitrate=BITRATE_KBPS, scale="none", mqtt=None,
                    more=None, extra=""):
    """A farmcast config: one clip, test tone, sim buttons, no recording.
    The bitrate's floor is its ceiling, so the show sends `bitrate` from its
    first second as the peers do (a show otherwise starts at what the link
    delivered last time, or a quarter of the ceiling, and climbs: 20% fewer
    bytes over the main table's 20 s, a CPU figure for less work).
    `mqtt` is None (disabled) or a dict of [mqtt] keys; `more` maps a table
    (`live`, `scale`) to extra lines in it; `extra` goes at the end."""
    more = more or {}
    sock = os.path.join(workdir, f"sim-{key}.sock")
    if mqtt:
        mqtt_toml = "enabled = true\n" + "".join(
            f"{k} = {toml_value(v)}\n" for k, v in mqtt.items())
    else:
        mqtt_toml = "enabled = false\n"
    cfg = f"""device_id = "bench"
state_dir = "{os.path.join(workdir, f"state-{key}")}"

[video]
source = "{source}"
width = {width}
height = {height}
framerate = {FPS}
bitrate_kbps = {bitrate}
min_bitrate_kbps = {bitrate}
encoder = "x264enc"
x264_preset = "{preset}"
keyframe_interval_s = {KEYFRAME_S}

[audio]
source = "test"
bitrate_kbps = {AUDIO_KBPS}

[live]
autostart = {"true" if autostart else "false"}
{more.get("live", "")}

[recording]
enabled = false
dir = "{os.path.join(workdir, "recordings")}"

[gpio]
backend = "sim"
sim_socket = "{sock}"

[scale]
kind = "{scale}"
{more.get("scale", "")}

[mqtt]
{mqtt_toml}
{extra}
"""
    return cfg, sock


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(v)


def write_farmcast(workdir, nginx, clip, key, autostart, **kw):
    """Writes the config (destination: `nginx`, stream `key`); returns (path, sim socket)."""
    cfg, sock = farmcast_config(workdir, f"file:{clip}", key, autostart, **kw)
    cfg += f'\n[[destinations]]\nname = "bench"\nurl = "{nginx.base_url()}"\nkey = "{key}"\n'
    path = os.path.join(workdir, f"farmcast-{key}.toml")
    with open(path, "w") as f:
        f.write(cfg)
    if os.path.exists(sock):
        os.unlink(sock)
    return path, sock


class Farmcast:
    """`farmcast run --config CFG` in its own process group, log to a file."""

    def __init__(self, binary, cfg, log):
        self.log = log
        # farmcast::frames: a line per destination connect and per tag, for
        # the tag section's frame count.
        env = dict(os.environ, RUST_LOG="info,farmcast::frames=debug")
        with open(log, "w") as logf:
            self.proc = subprocess.Popen([binary, "run", "--config", cfg],
                                         stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                         env=env, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def tail(self):
        return tail(self.log)

    def stop(self):
        stop_group(self.proc)


def stop_group(proc):
    """SIGTERM to `proc`'s process group, SIGKILL if it is not gone in 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cpu_s(pid):
    """utime + stime of a running process so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def run_peer(name, argv, stop_signal, seconds, nginx, stream, logdir, env=None, on_air=False):
    """Runs one peer for `seconds` and returns its measurements. With
    `on_air`, the seconds count from its first video frame at the server, so
    that every peer delivers the same frames: counted from the start, a peer
    that goes on air 0.2 s sooner encodes 6 frames more in the same time."""
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
            if on_air and watcher.seen_at is not None:
                deadline = watcher.seen_at + seconds
            pid, status, _ = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            status = None
            time.sleep(0.05)
        if status is not None:
            watcher.stop.set()
            raise NotAvailable(f"{name} exited with status {status} after "
                               f"{time.time() - t0:.1f} s: {tail(log)}")
        ran_s = time.time() - t0
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
        "ran_s": ran_s,
        "rss_mib": rusage.ru_maxrss / 1024,
        "publish_ms": (times[0] - t0) * 1000,
        "frame_ms": frame_ms,
        "frames": float(count_video_packets(nginx.recordings(stream))),
        "kbps": recorded_kbps(nginx.recordings(stream)),
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


def sim_ok(sock, line, timeout=10):
    answer = sim(sock, line, timeout)
    if not answer.startswith("ok"):
        raise NotAvailable(f"`{line}` on the sim socket answered {answer!r}")


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


def make_clip(path, seconds, size=f"{WIDTH}x{HEIGHT}", source="testsrc2"):
    """A y4m clip of the lavfi `source` (e.g. `testsrc2` or `color=c=0xb4b4b4`)."""
    stamp = f"{seconds} {size} {source}"
    if os.path.exists(path) and os.path.exists(path + ".done"):
        with open(path + ".done") as f:
            if f.read().strip() == stamp:
                return
    print(f"generating {path} ({seconds} s of {source} {size}@{FPS})", flush=True)
    sep = ":" if "=" in source else "="
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"{source}{sep}size={size}:rate={FPS}", "-t", str(seconds),
                    "-pix_fmt", "yuv420p", path], check=True)
    with open(path + ".done", "w") as f:
        f.write(stamp)


def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    return "n/a" if v is None else f"{v:.{digits}f}"


def verdict(ok):
    return "n/a" if ok is None else ("yes" if ok else "**no**")
