"""Benchmark section `fleet` (issue 17): a group push to many simulated boxes.

`farmcast fleet simulate` runs N boxes in one process (each the daemon's fleet
session and MQTT client, its own state folder, no media) against a loopback
mosquitto. `farmcast fleet push --group` then signs, publishes and follows
every box until the last `applied`. Figures: push -> last applied as the tool
itself reports it, the whole tool run, the CPU of the tool (rusage of the
child), of the broker and of the simulator during the push (/proc), and the
MQTT bytes each idle box costs per status interval (a subscriber to `P/#`
counts topic + payload bytes for a few intervals).
"""

import os
import re
import resource
import statistics
import subprocess
import time

from common import NotAvailable, fmt, tail
from mqtt_mini import Client, MqttError
from sections_mqtt import Mosquitto

GROUP = "bench"
TARGET_S = 10


def cpu_s(pid):
    """utime + stime of a process so far, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def keypair(d):
    key, pub = os.path.join(d, "manager.pem"), os.path.join(d, "manager.pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-pubout", "-in", key, "-out", pub], check=True,
                   capture_output=True)
    return key, pub


def bytes_per_box(port, boxes, interval, intervals=3):
    """MQTT bytes (topic + payload) per box per status interval while idle."""
    c = Client(port, "bench-fleet-count")
    try:
        c.subscribe("farmcast/#")
        drain = time.time() + 2  # the retained burst of the subscription
        while time.time() < drain:
            c.receive(0.2)
        total, t_end = 0, time.time() + interval * intervals
        while time.time() < t_end:
            msg = c.receive(0.2)
            if msg:
                total += len(msg[0]) + len(msg[1])
        return total / boxes / intervals
    finally:
        c.close()


def fleet_once(fc, work, boxes, runs, interval):
    os.makedirs(work, exist_ok=True)
    broker = Mosquitto(work)
    key, pub = keypair(work)
    simlog = os.path.join(work, "simulate.log")
    with open(simlog, "w") as errf:
        sim = subprocess.Popen(
            [fc, "fleet", "simulate", "--broker", broker.url(), "--group", GROUP,
             "--boxes", str(boxes), "--trusted-key", pub, "--dir", os.path.join(work, "boxes"),
             "--status-interval", str(interval)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errf, text=True,
            start_new_session=True)
    try:
        ready = sim.stdout.readline().split()
        if not ready or ready[0] != "ready":
            raise NotAvailable(f"the simulator did not start: {tail(simlog)}")
        start_s = float(ready[2])
        load = os.getloadavg()[0]
        time.sleep(interval + 1)  # every box has published its status with its groups
        per_box = bytes_per_box(broker.port, boxes, interval)
        pushes = []
        for i in range(runs):
            layer = os.path.join(work, f"layer-{i}.toml")
            with open(layer, "w") as f:
                f.write(f"[video]\nframerate = {20 + i}\n")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            b0, s0 = cpu_s(broker.proc.pid), cpu_s(sim.pid)
            t0 = time.perf_counter()
            out = subprocess.run(
                [fc, "fleet", "push", "--broker", broker.url(), "--key", key, "--group", GROUP,
                 "--version", str(i + 1), "--wait", "120", "--hold", "0", layer],
                capture_output=True, text=True)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            b1, s1 = cpu_s(broker.proc.pid), cpu_s(sim.pid)
            m = re.search(r"last applied ([\d.]+) s after the push", out.stdout)
            n = (re.findall(r"push: applied \d+/\d+", out.stdout) or [None])[-1]
            if out.returncode != 0 or not m:
                raise NotAvailable(f"push exited {out.returncode}: {out.stdout[-400:]} "
                                   f"{out.stderr[-400:]}")
            pushes.append({
                "applied_s": float(m.group(1)),
                "wall_s": wall,
                "applied": n.split(": ", 1)[1] if n else "?",
                "tool_cpu_s": (after.ru_utime + after.ru_stime)
                - (before.ru_utime + before.ru_stime),
                "broker_cpu_s": None if b0 is None or b1 is None else b1 - b0,
                "sim_cpu_s": None if s0 is None or s1 is None else s1 - s0,
            })
            print(f"    push {i + 1}: {pushes[-1]}", flush=True)
        return start_s, per_box, pushes, load
    finally:
        try:
            sim.stdin.close()
            sim.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(sim.pid, 9)
            sim.wait()
        broker.close()


def fleet_section(fc, run_dir, boxes, runs, cmd, interval=5):
    lines = ["## A group push to 500 simulated boxes (issue 17)", "",
             f"- command: `{cmd}` (boxes={boxes}, pushes={runs})", ""]
    try:
        start_s, per_box, pushes, load = fleet_once(fc, os.path.join(run_dir, "fleet"), boxes, runs,
                                              interval)
    except (NotAvailable, MqttError, OSError, subprocess.CalledProcessError) as e:
        return lines + [f"n/a: {str(e)[:400]}", "",
                        f"Targets: the whole fleet applied in under {TARGET_S} s: n/a", ""]

    def med(k):
        vals = [p[k] for p in pushes if p[k] is not None]
        return statistics.median(vals) if vals else None

    lines += [
        f"{boxes} boxes simulated in one process by `farmcast fleet simulate` (each the "
        f"daemon's fleet session and MQTT client with its own state folder, no media; "
        f"connected in {start_s:.1f} s), group `{GROUP}`, one loopback mosquitto, status every "
        f"{interval} s. Each push: `farmcast fleet push --group {GROUP}` of a layer that needs "
        f"a new pipeline (`video.framerate`), signed, published retained, followed until every "
        f"box reported `applied` (`--hold 0`: the tool returns at the last answer instead of "
        f"watching 35 s more for rollbacks). push → last applied is the tool's own figure (from "
        f"its publish to the last report); tool CPU from rusage of the child; broker and "
        f"simulator CPU from /proc over the push; the boxes fsync their state as the daemon "
        f"does, 500 of them on one disk. Load average when the boxes were up: {load:.1f} "
        f"(the machine is shared). Medians of {runs} pushes.",
        "",
        "| push | boxes applied | push → last applied s | tool run s | tool CPU s | "
        "broker CPU s | simulator CPU s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, p in enumerate(pushes):
        lines.append(f"| {i + 1} | {p['applied']} | {p['applied_s']:.2f} | {p['wall_s']:.2f} | "
                     f"{p['tool_cpu_s']:.2f} | {fmt(p['broker_cpu_s'], 2)} | "
                     f"{fmt(p['sim_cpu_s'], 2)} |")
    lines.append(f"| **median** | | **{fmt(med('applied_s'), 2)}** | {fmt(med('wall_s'), 2)} | "
                 f"{fmt(med('tool_cpu_s'), 2)} | {fmt(med('broker_cpu_s'), 2)} | "
                 f"{fmt(med('sim_cpu_s'), 2)} |")
    lines += [
        "",
        f"MQTT load per box while idle: **{per_box:.0f} bytes per status interval** "
        f"({interval} s; topic + payload, the retained `status` a box publishes each interval), "
        f"about {per_box / interval:.0f} B/s per box, {per_box / interval * 1000 / 1e6:.2f} MB/s "
        f"for 1,000 boxes, before MQTT framing.",
        "",
    ]
    m = med("applied_s")
    ok = None if m is None else m < TARGET_S
    lines += [f"Targets: the whole fleet applied in under {TARGET_S} s: {fmt(m, 2)} s — "
              f"{'n/a' if ok is None else ('met' if ok else '**not met**')}.", ""]
    return lines
