"""Benchmark section `loop` (issue 13): the driver loop's longest stall while a
show runs with camera restarts, status every second and a recordings folder
holding a season of past shows.

The daemon times each turn of its loop (from the wake to the next await) and
publishes the longest in status `loop.max_turn_ms` (since the last status)
and `loop.max_turn_ms_total` (since start). A `logs` command is asked every
half second as well: its round trip goes through the loop too, and is
measured from outside, so it also works for a binary without the field.
"""

import json
import os
import statistics
import time

from common import NotAvailable, Farmcast, Nginx, fmt, make_clip, sim_ok, wait_sim, write_farmcast
from mqtt_mini import Client, MqttError
from sections_mqtt import Mosquitto, TopicWatcher, mqtt_keys, round_trip, wait_online

# What the old loop did on every status: walk every segment of every past
# show. A season on a box: 20 shows of ~3 h in 10 s segments is 21,600 files.
SHOWS = 20
SEGMENT_BYTES = 188
# A turn this long is a stall a technician (or a button press) notices.
TARGET_MS = 200


class StatusLog(TopicWatcher):
    """Keeps every status, not only the last: each carries its interval's longest turn."""

    def __init__(self, port):
        super().__init__(port, "bench-loop", ["status"])
        self.all = []

    def run(self):
        while not self.stop.is_set():
            try:
                msg = self.client.receive(0.2)
            except (OSError, MqttError):
                return
            if msg and msg[0].endswith("/status"):
                self.all.append(msg[1])


def fill_recordings(root, files):
    """`files` small segment files spread over SHOWS past show folders."""
    per = max(1, files // SHOWS)
    made = 0
    for s in range(SHOWS):
        d = os.path.join(root, f"2026-01-{s + 1:02d}T10-00-00Z_past{s}")
        os.makedirs(d, exist_ok=True)
        for n in range(per):
            with open(os.path.join(d, f"seg-{n + 1:05d}.ts"), "wb") as f:
                f.write(b"\0" * SEGMENT_BYTES)
            made += 1
    return made


def loop_once(binary, work, clip, seconds, files):
    """One daemon, one run; the figures of that run."""
    os.makedirs(work, exist_ok=True)
    broker = Mosquitto(work)
    nginx = Nginx(work)
    fc = watcher = client = None
    rec = os.path.join(work, "recordings")
    try:
        made = fill_recordings(rec, files)
        cfg, sock = write_farmcast(work, nginx, clip, "loop", autostart=True, width=320,
                                   height=240, preset="ultrafast", bitrate=500,
                                   mqtt=mqtt_keys(broker, 1))
        with open(cfg) as f:
            text = f.read()
        # Recording on, with a budget the past shows just fill: each new
        # segment of the live show (~600 kB) makes the next pass walk the
        # folder and delete a few thousand of the oldest past segments.
        budget_gb = made * SEGMENT_BYTES / 1e9
        text = text.replace(
            "[recording]\nenabled = false\n",
            f"[recording]\nenabled = true\nsegment_s = 10\nmax_gb = {budget_gb:.9f}\n")
        with open(cfg, "w") as f:
            f.write(text)
        watcher = StatusLog(broker.port)
        watcher.start()
        fc = Farmcast(binary, cfg, os.path.join(work, "farmcast.log"))
        if not wait_sim(sock, fc.proc):
            raise NotAvailable(f"farmcast did not start: {fc.tail()}")
        client = Client(broker.port, "bench-loop-cmd")
        client.subscribe("farmcast/bench/#")
        if not wait_online(client):
            raise NotAvailable("farmcast did not come online on MQTT")
        # Let the show go live before the faults start.
        time.sleep(3)
        rtts, faults = [], 0
        plan = ["camera fail", "camera resume", "camera stall", "camera resume"]
        t_end = time.time() + seconds
        next_fault = time.time()
        i = 0
        while time.time() < t_end:
            if time.time() >= next_fault:
                sim_ok(sock, plan[faults % len(plan)])
                faults += 1
                next_fault = time.time() + 2.5
            ms, res = round_trip(client, "logs", f"l{i}", {"lines": 5}, timeout=15)
            rtts.append(ms)
            i += 1
            time.sleep(0.5)
        time.sleep(1.5)
        loops = []
        for raw in watcher.all:
            try:
                loops.append(json.loads(raw).get("loop"))
            except ValueError:
                pass
        loops = [l for l in loops if l]
        worst = max(loops, key=lambda l: l.get("max_turn_ms", 0), default=None)
        total = loops[-1] if loops else None
        left = sum(len(fs) for _, _, fs in os.walk(rec))
        return {
            "files": made,
            "left": left,
            "faults": faults,
            "statuses": len(watcher.all),
            "max_turn_ms": total.get("max_turn_ms_total") if total else None,
            "max_turn_what": (total.get("max_turn_what_total") if total else None),
            "worst_interval": (worst.get("max_turn_ms"), worst.get("max_turn_what")) if worst else None,
            "logs_max_ms": max(rtts) if rtts else None,
            "logs_median_ms": statistics.median(rtts) if rtts else None,
            "commands": len(rtts),
        }
    except (OSError, MqttError) as e:
        raise NotAvailable(f"{e}") from e
    finally:
        if client:
            client.close()
        if fc:
            fc.stop()
        if watcher:
            watcher.finish()
        nginx.close()
        broker.close()


def loop_section(binary, before, run_dir, clip_dir, runs, seconds, files, cmd):
    lines = ["## The driver loop's longest stall (issue 13)", "",
             f"- command: `{cmd}` (runs={runs}, seconds={seconds}, files={files})", ""]
    clip = os.path.join(clip_dir, "clip-240p.y4m")
    make_clip(clip, 10, size="320x240")
    peers = [("after", binary)]
    if before and os.access(before, os.X_OK):
        peers.insert(0, ("before", before))
    results = {name: [] for name, _ in peers}
    try:
        for r in range(runs):
            for name, b in peers:
                print(f"  loop run {r + 1}/{runs}, {name} ...", flush=True)
                res = loop_once(b, os.path.join(run_dir, f"loop-{name}-{r}"), clip, seconds,
                                files)
                print(f"    {res}", flush=True)
                results[name].append(res)
    except NotAvailable as e:
        return lines + [f"n/a: {str(e)[:400]}", "", "Targets: no blocking call on the loop: n/a", ""]
    lines += [
        f"A 320x240 clip (x264 ultrafast, 500 kbit/s) live to a loopback nginx-rtmp and "
        f"recorded in 10 s segments, with status every second over a loopback mosquitto, for "
        f"{seconds} s after go-live; a camera fault through the sim socket every 2.5 s "
        f"(`camera fail`, `resume`, `stall`, `resume`: the show restarts the camera each time); "
        f"the recordings folder holds {files:,} small segments of {SHOWS} past shows and the "
        f"budget is just full, so every new segment makes a budget pass walk the folder and "
        f"delete a few thousand of the oldest (files left at the end, per run: "
        + "; ".join(f"{n} {', '.join(str(r['left']) for r in rs)}" for n, rs in results.items())
        + f"). `logs` is asked every "
        f"0.5 s. Longest turn = status `loop.max_turn_ms_total` at the end of the run (the "
        f"daemon times each turn of its loop from the wake to the next await; with it, what "
        f"that turn was doing). Median of {runs} runs.",
        "",
        "| binary | longest loop turn (ms), each run | median | what the longest turn did | "
        "`logs` round trip max (ms), median of runs | camera faults per run |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    meds = {}
    for name, _ in peers:
        rows = results[name]
        turns = [r["max_turn_ms"] for r in rows if r["max_turn_ms"] is not None]
        meds[name] = statistics.median(turns) if turns else None
        whats = sorted({r["max_turn_what"] for r in rows if r["max_turn_what"]})
        logs = [r["logs_max_ms"] for r in rows if r["logs_max_ms"] is not None]
        label = {"before": "before (base + the turn timer only)", "after": "after (this tree)"}[name]
        lines.append(
            f"| {label} | {', '.join(str(t) for t in turns) or 'n/a'} | "
            f"{fmt(meds[name])} | {', '.join(f'`{w}`' for w in whats) or 'n/a'} | "
            f"{fmt(statistics.median(logs) if logs else None)} | "
            f"{', '.join(str(r['faults']) for r in rows)} |")
    lines.append("")
    if "before" not in results:
        lines += ["No `before` binary was given (`--loop-before PATH`): only the figure after "
                  "the change is shown.", ""]
    after = meds.get("after")
    ok = None if after is None else after < TARGET_MS
    lines += [f"Targets: no blocking call on the loop (longest turn under {TARGET_MS} ms "
              f"with camera restarts, status every second and {files:,} recordings): "
              f"{fmt(after)} ms — {'n/a' if ok is None else ('met' if ok else '**not met**')}.",
              ""]
    return lines
