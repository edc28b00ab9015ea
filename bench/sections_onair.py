"""Issue 14's figures that have no section of their own, and its summary.

- The go-live breakdown: where the time goes from the press to the publish,
  read from the daemon's own log lines (one clock with the benchmark).
- standby: the daemon's CPU in standby against the same box live.
- onair: every row of issue 14's table as measured in this run, beside its
  target (rows whose section did not run say so).
"""

import datetime
import os
import re
import statistics
import subprocess
import time

from common import (FIGURES, NotAvailable, Nginx, cpu_s, sim, stop_group, tail, verdict,
                    wait_sim, write_farmcast)

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+\w+\s+(.*)$")


def log_times(path, needle):
    """Epoch seconds of the daemon's log lines containing `needle`."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            m = STAMP.match(line.strip())
            if m and needle in m.group(2):
                t = datetime.datetime.fromisoformat(m.group(1)).replace(
                    tzinfo=datetime.timezone.utc)
                out.append(t.timestamp())
    return out


def golive_breakdown(log, presses):
    """`presses`: (press sent, publish at nginx) epoch pairs. Returns rows of
    (debounce, pipeline built, publish) ms per press, from the log's
    `button=go_live kind=Down` and `connecting` lines."""
    downs = log_times(log, "button=go_live kind=Down")
    connecting = log_times(log, "connecting destination=")
    rows = []
    for t0, pub in presses:
        d = next((t for t in downs if t >= t0), None)
        c = next((t for t in connecting if d is not None and t >= d), None)
        if d is None or c is None or c > pub:
            continue
        rows.append(((d - t0) * 1000, (c - d) * 1000, (pub - c) * 1000))
    return rows


def breakdown_lines(rows):
    if not rows:
        return ["Breakdown: n/a (the log lines were not found)", ""]
    med = [statistics.median(r[i] for r in rows) for i in range(3)]
    return [
        "Where the time goes (medians; from the daemon's log lines, same clock):",
        "",
        "| step | ms | what it is |",
        "| --- | ---: | --- |",
        f"| press → `button=go_live kind=Down` | {med[0]:.1f} | the debounce "
        "(`gpio.debounce_ms`, 30): the press counts once it has settled; the show "
        "starts there, not at the release |",
        f"| → `connecting` | {med[1]:.1f} | the destination's pipeline built and "
        "started (its plugins and GIO were loaded in standby) |",
        f"| → publish at nginx | {med[2]:.1f} | TCP connect, RTMP handshake, "
        "`connect`, `createStream`, `publish`, nginx's `exec_publish` |",
        "",
        "What was removed (measured with `GST_DEBUG=rtmpclient:6,rtmpconnection:5` and "
        "strace on nginx, 2026-12-02): the go-live press acted on release (the sim's "
        "press lasts 80 ms, a finger's 100-300 ms); rtmp2sink's socket had Nagle on, so "
        "`connect` (after the handshake's C2) and `releaseStream` (after the window "
        "acknowledgement) each waited for nginx's delayed ACK, 40 ms each; the first "
        "go-live of a run also loaded the flv/rtmp2 plugins (117 ms) and GIO's modules "
        "(108 ms). What is left in the last row is one more 40 ms wait on the server's "
        "side: nginx-rtmp writes its four answers to `connect` separately without "
        "`TCP_NODELAY`, and the second waits for the box's delayed ACK.",
        "",
    ]


def standby_vs_live(binary, run_dir, clip, seconds):
    """CPU seconds of one daemon over `seconds` in standby, then over
    `seconds` live (3 s after the press), and the press → publish ms."""
    work = os.path.join(run_dir, "standby")
    os.makedirs(work, exist_ok=True)
    nginx = Nginx(work)
    cfg, sock = write_farmcast(work, nginx, clip, "standby", autostart=False)
    log = os.path.join(work, "farmcast.log")
    with open(log, "w") as logf:
        proc = subprocess.Popen([binary, "run", "--config", cfg], stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=logf,
                                env=dict(os.environ, RUST_LOG="info"),
                                start_new_session=True)
    try:
        if not wait_sim(sock, proc):
            raise NotAvailable(f"sim socket never answered: {tail(log)}")
        time.sleep(3)
        a = cpu_s(proc.pid)
        time.sleep(seconds)
        standby = cpu_s(proc.pid) - a
        known = len(nginx.publish_times())
        t0 = time.time()
        if sim(sock, "press go_live") != "ok":
            raise NotAvailable("`press go_live` refused")
        if not nginx.wait_publish(known, 15):
            raise NotAvailable(f"no publish after the press: {tail(log)}")
        golive = (nginx.publish_times()[known] - t0) * 1000
        time.sleep(3)
        a = cpu_s(proc.pid)
        time.sleep(seconds)
        live = cpu_s(proc.pid) - a
        return standby, live, golive
    finally:
        stop_group(proc)
        nginx.close()


def standby_section(binary, run_dir, clip, runs, seconds, cmd, size):
    lines = ["## Standby CPU against live (issue 14)", "",
             f"- command: `{cmd}` (runs={runs}, {seconds} s each)", ""]
    rows, reason = [], None
    for i in range(runs):
        print(f"farmcast standby vs live, run {i + 1}/{runs} ...", flush=True)
        try:
            rows.append(standby_vs_live(binary, run_dir, clip, seconds))
        except NotAvailable as e:
            reason = str(e)[:300]
            break
    if not rows:
        return lines + [f"n/a: {reason}", ""]
    ratio = statistics.median(s / l * 100 for s, l, _ in rows)
    golive = statistics.median(g for _, _, g in rows)
    FIGURES["standby_pct"] = ratio
    lines += [
        f"One daemon, the main table's {size} clip and x264 settings, recording off: CPU "
        f"(user+sys from /proc) over {seconds} s in standby, then over {seconds} s live "
        "(3 s after `press go_live`). In standby the encoder's door is closed: the "
        "picture still runs up to it (the phone's preview is taken there).",
        "",
        "| run | standby CPU s | live CPU s | standby / live | press → publish ms |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for i, (s, l, g) in enumerate(rows, 1):
        lines.append(f"| {i} | {s:.2f} | {l:.2f} | {s / l * 100:.0f}% | {g:.0f} |")
    lines += ["", f"Targets: standby ≤ 25% of live: {ratio:.0f}% — {verdict(ratio <= 25)}; "
              f"go-live from that standby ≤ 100 ms: {golive:.0f} ms — {verdict(golive <= 100)}.",
              ""]
    return lines


ROWS = [
    # (key in FIGURES, what, target text, met?, format)
    ("golive_ms", "press → publish accepted at a loopback server", "≤ 100 ms",
     lambda v: v <= 100, "{:.0f} ms"),
    ("tag_frames", "product press → first frame at the server with the lower third "
     "(ordinal among the frames that entered the encoder after the text was set; "
     "section `tag`)", "1 (the first frame encoded after the press is debounced)",
     lambda v: v <= 1, "{:.0f}"),
    ("rss_mib", "peak RSS, main table", "≤ 64 MiB", lambda v: v <= 64, "{:.1f} MiB"),
    ("cpu_vs_ffmpeg", "CPU, main table, against ffmpeg", "≤ 1.00×", lambda v: v <= 1.0,
     "{:.2f}×"),
    ("standby_pct", "CPU in standby against live", "≤ 25%", lambda v: v <= 25, "{:.0f}%"),
    ("uplink_frames_pct", "frames delivered in the first 45 s, 4000 kbit/s configured, "
     "median of the runs, the worst of the 1200 kbit/s link (cold, remembered) and the "
     "1200 → 600 → 2000 one (section `uplink`)",
     "≥ 99%", lambda v: v >= 99, "{:.1f}%"),
    ("uplink_carried_pct", "link carried 7-10 s after go-live and after each step, "
     "median of the runs, worst",
     "≥ 80%", lambda v: v >= 80, "{:.0f}%"),
    ("web_tap_ms", "the phone page: a tap on go-live → publish (issue 15, section `web`)",
     "≤ 100 ms (as the button)", lambda v: v <= 100, "{:.0f} ms"),
    ("restart_ms", "server back → first frame again", "≤ 250 ms", lambda v: v <= 250,
     "{:.0f} ms"),
]


def onair_section(cmd):
    """Issue 14's table from the figures this run measured."""
    lines = ["## On air in one frame, on a phone's memory, at ffmpeg's CPU (issue 14)", "",
             f"- command: `{cmd}`", "",
             "Every row measured in this run by the section named in its own part of this "
             "file (its method and resolution are there); a row whose section did not run "
             "in this invocation says so.", "",
             "| what | measured | target | met |", "| --- | --- | --- | --- |"]
    for key, what, target, ok, fmt in ROWS:
        v = FIGURES.get(key)
        if v is None:
            lines.append(f"| {what} | not run | {target} | n/a |")
        else:
            lines.append(f"| {what} | {fmt.format(v)} | {target} | {verdict(ok(v))} |")
    iso = FIGURES.get("cpu_isolation")
    if iso is not None and FIGURES.get("cpu_vs_ffmpeg", 0) > 1.0:
        lines += ["", f"CPU against ffmpeg, why not met: farmcast's pipelines are kept apart "
                  "(a stalled camera, a lost microphone, a slow destination stop nothing "
                  f"else), and that costs {iso[0]:+.2f} core-s a run in the main table; the "
                  f"same parts in one pipeline ran at {iso[1]:.2f}× ffmpeg (section `main`). "
                  "Section `memory` compares the encoders alone, under each."]
    return lines + [""]
