"""The phone page's cost and speed (issue 15): the daemon with `[web]` on,
the main table's 1280x720 clip and x264 settings, one nginx-rtmp destination.

- CPU (utime+stime from /proc) over S s in standby with no phone, then over
  S s with one phone fetching the preview as the page does (a JPEG, then a
  400 ms pause), then both again live.
- The preview's delay: the time to answer `/api/preview.jpg` (its JPEG is
  made on request from the newest frame at the encoder's door).
- A tap on go-live: `POST /api/go-live` sent -> publish accepted at nginx.
"""

import http.client
import json
import os
import statistics
import subprocess
import time

from common import (FIGURES, Nginx, NotAvailable, cpu_s, free_port, stop_group, tail,
                    verdict, wait_sim, write_farmcast)

CODE = "482913"


class Phone:
    """A logged-in phone: cookie and CSRF token, as the page has them."""

    def __init__(self, port):
        self.port = port
        r, body = self.request("POST", "/login", {"code": CODE})
        if r.status != 200:
            raise NotAvailable(f"login answered {r.status}: {body[:200]!r}")
        self.cookie = r.getheader("set-cookie").split(";")[0]
        _, page = self.request("GET", "/")
        self.csrf = page.decode(errors="replace").split('name="csrf" content="')[1].split('"')[0]

    def request(self, method, path, payload=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {}
        if getattr(self, "cookie", None):
            headers["Cookie"] = self.cookie
        if getattr(self, "csrf", None):
            headers["X-Farmcast-CSRF"] = self.csrf
        body = None
        if payload is not None:
            body = json.dumps(payload)
            headers["Content-Type"] = "application/json"
        c.request(method, path, body, headers)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data


def watch(phone, pid, seconds, with_phone):
    """CPU % of one core over `seconds`; preview answer times (ms)."""
    t0, c0, answers = time.time(), cpu_s(pid), []
    while time.time() - t0 < seconds:
        if with_phone:
            a = time.time()
            r, body = phone.request("GET", "/api/preview.jpg")
            if r.status == 200 and body[:2] == b"\xff\xd8":
                answers.append((time.time() - a) * 1000)
            time.sleep(0.4)
        else:
            time.sleep(0.5)
    return (cpu_s(pid) - c0) / (time.time() - t0) * 100, answers


def web_run(binary, run_dir, clip, seconds, taps):
    work = os.path.join(run_dir, "web")
    os.makedirs(work, exist_ok=True)
    nginx = Nginx(work)
    port = free_port()
    cfg, sock = write_farmcast(
        work, nginx, clip, "web", autostart=False,
        extra=f'\n[web]\nenabled = true\nlisten = "127.0.0.1:{port}"\npairing_code = "{CODE}"\n')
    log = os.path.join(work, "farmcast.log")
    with open(log, "w") as logf:
        proc = subprocess.Popen([binary, "run", "--config", cfg], stdin=subprocess.DEVNULL,
                                stdout=logf, stderr=logf,
                                env=dict(os.environ, RUST_LOG="info"), start_new_session=True)
    try:
        if not wait_sim(sock, proc):
            raise NotAvailable(f"the daemon never answered: {tail(log)}")
        time.sleep(2)
        phone = Phone(port)
        out = {"standby": [watch(phone, proc.pid, seconds, w) for w in (False, True)]}
        tap_ms = []
        for i in range(taps):
            known = len(nginx.publish_times())
            t0 = time.time()
            r, body = phone.request("POST", "/api/go-live", {})
            if r.status != 200:
                raise NotAvailable(f"go-live answered {r.status}: {body[:200]!r}")
            if not nginx.wait_publish(known, 15):
                raise NotAvailable(f"no publish after the tap: {tail(log)}")
            tap_ms.append((nginx.publish_times()[known] - t0) * 1000)
            if i == taps - 1:
                time.sleep(3)
                out["live"] = [watch(phone, proc.pid, seconds, w) for w in (False, True)]
            else:
                time.sleep(2)
            phone.request("POST", "/api/end", {"confirm": True})
            if not nginx.wait_idle(20):
                raise NotAvailable("the show did not end after /api/end")
            time.sleep(1.5)
        out["tap_ms"] = tap_ms
        return out
    finally:
        stop_group(proc)
        nginx.close()


def web_section(binary, run_dir, clip, seconds, taps, cmd, size):
    lines = ["## The phone page: its cost and a tap on go-live (issue 15)", "",
             f"- command: `{cmd}` ({seconds} s per figure, taps={taps})", ""]
    print("farmcast phone page ...", flush=True)
    try:
        r = web_run(binary, run_dir, clip, seconds, taps)
    except NotAvailable as e:
        return lines + [f"n/a: {str(e)[:300]}", ""]
    rows = []
    for state in ("standby", "live"):
        (idle, _), (watched, answers) = r[state]
        med = statistics.median(answers) if answers else None
        rows.append((state, idle, watched, len(answers) / seconds, med))
    tap = statistics.median(r["tap_ms"])
    FIGURES["web_tap_ms"] = tap
    preview = max(m for *_, m in rows if m is not None)
    lines += [
        f"`[web]` on, the main table's {size} clip and x264 settings, one nginx-rtmp "
        "destination. The phone is a client that logs in with the pairing code and fetches "
        "`/api/preview.jpg` as the page does (the JPEG, then 400 ms). The preview's JPEG is "
        "made on request from the newest frame at the encoder's door (`Snapshotter`), so it "
        "is behind the picture by at most one frame at the door (33 ms) plus the answer's "
        "time below.",
        "",
        "| state | daemon CPU, no phone (% of a core) | with one phone watching | the phone's "
        "cost | previews/s | preview answer ms (median) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for state, idle, watched, rate, med in rows:
        lines.append(f"| {state} | {idle:.1f} | {watched:.1f} | {watched - idle:+.1f} | "
                     f"{rate:.1f} | {'n/a' if med is None else f'{med:.0f}'} |")
    cost = max(w - i for _, i, w, _, _ in rows)
    lines += [
        "",
        f"A tap on go-live (`POST /api/go-live` sent → publish accepted at nginx): "
        f"{', '.join(f'{v:.0f}' for v in r['tap_ms'])} ms, median **{tap:.0f} ms** (no "
        "debounce: the page's tap is a command).",
        "",
        f"Targets: the preview at most 0.5 s behind: ≤ {33 + preview:.0f} ms — "
        f"{verdict(33 + preview <= 500)}; at most a few % of a core: {cost:+.1f}% — "
        f"{verdict(cost <= 5)}.",
        "",
    ]
    return lines
