"""Benchmark section `uplink` (issues 8 and 14): bench/uplink.sh's shaped
links, farmcast beside ffmpeg in one run, and the issue's targets: at least
99% of the frames delivered in the first 45 s, and at least 80% of the link
carried within 10 s of go-live (7-10 s after the publish), on the fixed
1200 kbit/s link and on the link that steps 1200 -> 600 -> 2000 kbit/s (there
also 7-10 s after each step, of the new rate).
"""

import os
import subprocess

from common import FIGURES, verdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAMES_TARGET = 99.0
CARRIED_TARGET = 80.0


def pct(cell):
    try:
        return float(cell.strip().rstrip("%"))
    except ValueError:
        return None


def rows(body):
    """The table's rows as lists of stripped cells."""
    out = []
    for line in body:
        if line.startswith("| ") and not line.startswith("| ---") and not line.startswith("| link"):
            out.append([c.strip() for c in line.strip().strip("|").split("|")])
    return out


def targets(table):
    """One line per farmcast row: its figures against the targets, beside
    ffmpeg's on the same link and protocol."""
    lines = []
    for r in table:
        if len(r) < 10 or not r[1].startswith("farmcast"):
            continue
        link, program, start = r[0], r[1], r[2]
        proto = program.split()[-1]
        ff = next((x for x in table if x[0] == link and x[1] == f"ffmpeg {proto}"), None)
        frames = pct(r[4])
        carried = [pct(c) for c in r[5:8] if c.strip() != "-"]
        ok_frames = None if frames is None else frames >= FRAMES_TARGET
        ok_carried = None if not carried or None in carried else min(carried) >= CARRIED_TARGET
        beside = f" (ffmpeg: {ff[4]}, carried {', '.join(c for c in ff[5:8] if c != '-')})" if ff else ""
        lines += [f"Targets ({link} kbit/s, {program}, start {start}): frames delivered "
                  f"{r[4]} ≥ {FRAMES_TARGET:.0f}%: {verdict(ok_frames)}; link carried "
                  f"{', '.join(c for c in r[5:8] if c != '-')} ≥ {CARRIED_TARGET:.0f}%: "
                  f"{verdict(ok_carried)}{beside}.", ""]
    return lines


def uplink_section(args, cmd):
    lines = ["## Shaped uplink (issues 8 and 14)", "",
             f"- command: `{cmd}` → `bench/uplink.sh` (DURATION={args.uplink_seconds})", ""]
    why = None
    if os.geteuid() != 0:
        why = "not root: a network namespace and tc need root"
    elif subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        why = "`ip netns` does not work here"
    elif not os.access(args.farmcast, os.X_OK):
        why = f"no binary at {args.farmcast}"
    if why:
        return lines + [f"Skipped: {why}.", "", "Targets: thin link from the first second: n/a", ""]
    print(f"uplink.sh, {args.uplink_seconds} s per run, 7 runs ...", flush=True)
    env = dict(os.environ, DURATION=str(args.uplink_seconds), FARMCAST_BIN=args.farmcast)
    out = subprocess.run(["bash", os.path.join(ROOT, "bench", "uplink.sh")], env=env,
                         capture_output=True, text=True, timeout=10 * args.uplink_seconds + 300)
    body = out.stdout.strip().splitlines()
    table = rows(body)
    if out.returncode != 0 or not any(r[1].startswith("farmcast") for r in table if len(r) > 1):
        return lines + [f"n/a: uplink.sh exited {out.returncode}: "
                        + " | ".join(out.stderr.strip().splitlines()[-5:])[:400], "",
                        "Targets: thin link from the first second: n/a", ""]
    body = [line for line in body if not line.startswith("(logs and recordings")]
    while body and not body[-1].strip():
        body.pop()
    print("\n".join(body), flush=True)
    lines += body + ["",
                     "`start` = the target the show started at (farmcast logs it; the first farmcast "
                     "run has nothing remembered, the next ones what the run before delivered, "
                     "kept in `<state_dir>/abr/links.json`). `carried` = what the server received "
                     "7–10 s after the publish (or after a step of the link), in percent of the "
                     "link then. Frames include the group of pictures sent at go-live, so a run "
                     "can show more than 100%.", ""]
    record(table)
    return lines + targets(table)


def record(table):
    """The issue 14 summary's figures (`onair`): the worst farmcast RTMP run,
    fixed or stepping link, frames and every carried window."""
    fc = [r for r in table if len(r) >= 10 and r[1] == "farmcast RTMP"]
    frames = [v for v in (pct(r[4]) for r in fc) if v is not None]
    carried = [v for r in fc for v in (pct(c) for c in r[5:8] if c.strip() != "-") if v is not None]
    if frames:
        FIGURES["uplink_frames_pct"] = min(frames)
    if carried:
        FIGURES["uplink_carried_pct"] = min(carried)
