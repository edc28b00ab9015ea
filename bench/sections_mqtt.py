"""Benchmark sections about MQTT (issue 5): a command's round trip through a
loopback mosquitto, and what the periodic status publish costs in CPU.
"""

import json
import os
import signal
import statistics
import subprocess
import threading
import time

from common import (AUDIO_KBPS, BITRATE_KBPS, FPS, HEIGHT, KEYFRAME_S, WIDTH, Farmcast,
                    NotAvailable, Nginx, free_port, run_peer, tail, wait_tcp,
                    write_farmcast)
from mqtt_mini import Client, MqttError

PREFIX, DEVICE = "farmcast", "bench"


class Mosquitto:
    """A loopback broker: anonymous, no persistence, its own config."""

    def __init__(self, workdir):
        d = os.path.join(workdir, "mosquitto")
        os.makedirs(d, exist_ok=True)
        self.port = free_port()
        conf = os.path.join(d, "mosquitto.conf")
        self.log = os.path.join(d, "mosquitto.log")
        with open(conf, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                    "persistence false\nlog_dest stderr\n")
            if os.geteuid() == 0:
                f.write("user root\n")
        with open(self.log, "w") as logf:
            self.proc = subprocess.Popen(["mosquitto", "-c", conf], stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=logf, start_new_session=True)
        if not wait_tcp(self.port, 10):
            self.close()
            raise NotAvailable(f"mosquitto did not listen: {tail(self.log)}")

    def url(self):
        return f"mqtt://127.0.0.1:{self.port}"

    def close(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


def mqtt_keys(broker, interval=5):
    return {"url": broker.url(), "topic_prefix": PREFIX, "status_interval_s": interval,
            "hass_discovery": False}


def wait_online(client, timeout=30):
    """Waits for the retained `online` on the availability topic."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = client.receive(deadline - time.time())
        if msg and msg[0].endswith("/availability") and msg[1] == b"online":
            return True
    return False


def round_trip(client, cmd, rid, args=None, timeout=10):
    """ms from publishing the request to receiving its result, and the result."""
    req = {"id": rid, "cmd": cmd}
    if args:
        req["args"] = args
    t0 = time.perf_counter()
    client.publish(f"{PREFIX}/{DEVICE}/cmd", json.dumps(req))
    deadline = time.time() + timeout
    while time.time() < deadline:
        msg = client.receive(deadline - time.time())
        if not msg or not msg[0].endswith("/cmd/result"):
            continue
        try:
            res = json.loads(msg[1])
        except ValueError:
            continue
        if res.get("id") == rid:
            return (time.perf_counter() - t0) * 1000, res
    raise NotAvailable(f"no result for `{cmd}` within {timeout} s")


def command_rtts(binary, run_dir, clip, logs_n, golive_n):
    work = os.path.join(run_dir, "mqtt")
    os.makedirs(work, exist_ok=True)
    broker = Mosquitto(work)
    nginx = Nginx(work)
    fc = client = None
    try:
        cfg, _ = write_farmcast(work, nginx, clip, "mqtt", autostart=False, width=640,
                                height=360, preset="ultrafast", bitrate=1000,
                                mqtt=mqtt_keys(broker))
        client = Client(broker.port, "bench-rtt")
        client.subscribe(f"{PREFIX}/{DEVICE}/availability")
        client.subscribe(f"{PREFIX}/{DEVICE}/cmd/result")
        fc = Farmcast(binary, cfg, os.path.join(work, "farmcast.log"))
        if not wait_online(client):
            raise NotAvailable(f"farmcast never came online on MQTT: {fc.tail()}")
        time.sleep(1)  # let start-up publishing (status, discovery) pass
        logs = []
        for i in range(logs_n):
            ms, res = round_trip(client, "logs", f"logs-{i}", {"lines": 10})
            if not res.get("ok"):
                raise NotAvailable(f"`logs` failed: {res}")
            logs.append(ms)
            time.sleep(0.05)
        golive, endshow = [], []
        for i in range(golive_n):
            known = len(nginx.publish_times())
            ms, res = round_trip(client, "go_live", f"go-{i}")
            if not res.get("ok"):
                raise NotAvailable(f"`go_live` failed: {res}")
            golive.append(ms)
            if nginx.wait_publish(known, 15) is None:
                raise NotAvailable(f"go_live answered but nothing was published: {fc.tail()}")
            time.sleep(1.5)
            ms, res = round_trip(client, "end_show", f"end-{i}")
            if not res.get("ok"):
                raise NotAvailable(f"`end_show` failed: {res}")
            endshow.append(ms)
            if not nginx.wait_idle(20):
                raise NotAvailable("the show did not end after `end_show`")
            time.sleep(1)
        return logs, golive, endshow
    except (OSError, MqttError) as e:
        raise NotAvailable(f"MQTT: {e}") from e
    finally:
        if client:
            client.close()
        if fc:
            fc.stop()
        nginx.close()
        broker.close()


def rtt_section(binary, run_dir, clip, logs_n, golive_n, cmd):
    lines = ["## MQTT command round trip (issue 5)", "",
             f"- command: `{cmd}` (logs={logs_n}, go_live={golive_n})", ""]
    try:
        logs, golive, endshow = command_rtts(binary, run_dir, clip, logs_n, golive_n)
    except NotAvailable as e:
        return lines + [f"n/a: {str(e)[:400]}", "", "Targets: round trip: n/a", ""]

    def spread(v):
        return (f"median **{statistics.median(v):.1f} ms** (min {min(v):.1f}, "
                f"max {max(v):.1f}, n={len(v)})")

    lines += [
        "A loopback mosquitto (anonymous, no persistence); farmcast in standby with MQTT on "
        "(640x360 clip, destination: a loopback nginx-rtmp). The benchmark's client is a "
        "minimal MQTT 3.1.1 client over a socket (bench/mqtt_mini.py, QoS 0), connected "
        "once and subscribed to `P/D/cmd/result` before the first request, so no process "
        "start-up is timed. Round trip = request published → its `cmd/result` (matched "
        "by `id`) received, `time.perf_counter()` on one clock.",
        "",
        f"- `logs` (`{{\"lines\": 10}}`), back to back: {spread(logs)}",
        f"- `go_live` from standby (answered once the show machine took it): {spread(golive)}",
        f"- `end_show` while live: {spread(endshow)}",
        "",
        f"Targets: a technician's command answered well within a second: "
        f"`logs` {statistics.median(logs):.1f} ms, `go_live` {statistics.median(golive):.1f} ms "
        f"— {'met' if max(statistics.median(logs), statistics.median(golive)) < 1000 else '**not met**'}.",
        "",
    ]
    return lines


class StatusCounter(threading.Thread):
    """Counts the status publishes seen during a run."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.client = Client(port, "bench-status")
        self.client.subscribe(f"{PREFIX}/{DEVICE}/status")
        self.count = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                msg = self.client.receive(0.2)
            except (OSError, MqttError):
                return
            if msg and msg[0].endswith("/status"):
                self.count += 1

    def finish(self):
        self.stop.set()
        self.join(2)
        self.client.close()
        return self.count


def status_cost(binary, run_dir, clip, runs, seconds):
    """CPU of a 720p live run, MQTT off vs status every second; alternated."""
    work = os.path.join(run_dir, "status")
    os.makedirs(work, exist_ok=True)
    broker = Mosquitto(work)
    nginx = Nginx(work)
    off, on, counts = [], [], []
    try:
        for i in range(runs):
            for variant in ("off", "on"):
                stream = f"status-{variant}-{i}"
                keys = mqtt_keys(broker, 1) if variant == "on" else None
                cfg, _ = write_farmcast(work, nginx, clip, stream, autostart=True, mqtt=keys)
                counter = StatusCounter(broker.port) if variant == "on" else None
                if counter:
                    counter.start()
                print(f"  status cost run {i + 1}/{runs}, mqtt {variant} ...", flush=True)
                try:
                    r = run_peer("farmcast", [binary, "run", "--config", cfg], signal.SIGTERM,
                                 seconds, nginx, stream, work,
                                 dict(os.environ, RUST_LOG="info"))
                finally:
                    n = counter.finish() if counter else None
                pct = 100 * r["cpu_s"] / seconds
                (on if variant == "on" else off).append(pct)
                if n is not None:
                    counts.append(n)
                print(f"    CPU {pct:.1f}% of one core" + (f", {n} status messages" if n is not None else ""), flush=True)
        return off, on, counts
    except (OSError, MqttError) as e:
        raise NotAvailable(f"MQTT: {e}") from e
    finally:
        nginx.close()
        broker.close()


def status_section(binary, run_dir, clip, runs, seconds, cmd):
    lines = ["## MQTT status publishing cost (issue 5)", "",
             f"- command: `{cmd}` (runs={runs}, seconds={seconds})", ""]
    try:
        off, on, counts = status_cost(binary, run_dir, clip, runs, seconds)
    except NotAvailable as e:
        return lines + [f"n/a: {str(e)[:400]}", "", "Targets: status cost negligible: n/a", ""]
    moff, mon = statistics.median(off), statistics.median(on)
    delta = mon - moff
    noise = max(max(off) - min(off), max(on) - min(on))
    lines += [
        f"The main table's input and encode ({WIDTH}x{HEIGHT} {FPS} fps clip, x264 veryfast "
        f"{BITRATE_KBPS} kbit/s, keyframe every {KEYFRAME_S} s, AAC {AUDIO_KBPS}k) live to a "
        f"loopback nginx-rtmp for {seconds} s, once with `mqtt.enabled = false` and once with "
        "MQTT on (loopback mosquitto, `mqtt.status_interval_s = 1`, no Home Assistant "
        f"discovery), alternated ({runs} of each). CPU = user+sys from wait4() over the run "
        "(start-up included, the same in both).",
        "",
        "| MQTT | CPU % of one core, each run | median |",
        "| --- | --- | ---: |",
        f"| off | {', '.join(f'{v:.1f}' for v in off)} | {moff:.1f} |",
        f"| on, status every 1 s | {', '.join(f'{v:.1f}' for v in on)} | {mon:.1f} |",
        "",
        f"Difference: {delta:+.2f} points (% of one core), {100 * delta / moff:+.1f}% of the "
        f"encode's CPU (spread between runs of one variant: up to {noise:.1f} points). Status "
        f"messages seen per run with MQTT on: {', '.join(str(c) for c in counts)} "
        f"(about one a second expected).",
        "",
        f"Targets: status publishing negligible against the encode (≤ 1% of its CPU, or "
        f"within the run-to-run spread): {delta:+.2f} points — "
        f"{'met' if delta <= max(0.01 * moff, noise) else '**not met**'}.",
        "",
    ]
    return lines

