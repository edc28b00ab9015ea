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


def median(values):
    v = sorted(values)
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


def groups(table):
    """farmcast's rows by (link, program, cold or remembered), in table order:
    the same run repeated RUNS times."""
    out = {}
    for r in table:
        if len(r) < 10 or not r[1].startswith("farmcast"):
            continue
        key = (r[0], r[1], "nothing remembered" in r[2])
        out.setdefault(key, []).append(r)
    return out


def medians(rs):
    """(frames %, [carried % per window]) medians over the runs of one group,
    None where a run has no figure."""
    frames = [pct(r[4]) for r in rs]
    frames = median(frames) if frames and None not in frames else None
    carried = []
    for col in range(5, 8):
        cells = [r[col] for r in rs]
        if all(c.strip() == "-" for c in cells):
            continue
        vals = [pct(c) for c in cells]
        carried.append(median(vals) if None not in vals else None)
    return frames, carried


def median_table(table):
    """One row per farmcast run kind: the medians over its repetitions, with
    each run's figure beside them."""
    lines = ["Medians of farmcast's runs (each run's figure in brackets, in the order run):", "",
             "| link kbit/s | program | start | runs | frames delivered | carried 7–10 s after "
             "go-live | after the first step | after the second step |",
             "| --- | --- | --- | ---: | --- | --- | --- | --- |"]
    for (link, program, cold), rs in groups(table).items():
        frames, carried = medians(rs)

        def cell(value, col):
            each = ", ".join(r[col] for r in rs)
            return "-" if value is None else f"**{value:.1f}%** ({each})"
        cols = [cell(frames, 4)]
        windows = [c for c in range(5, 8) if not all(r[c].strip() == "-" for r in rs)]
        cols += [cell(v, c) for v, c in zip(carried, windows)]
        cols += ["-"] * (4 - len(cols))
        lines.append(f"| {link} | {program} | {'cold' if cold else 'remembered'} | {len(rs)} | "
                     + " | ".join(cols) + " |")
    return lines + [""]


def targets(table):
    """One line per farmcast run kind: its medians against the targets,
    beside ffmpeg's on the same link and protocol."""
    lines = []
    for (link, program, cold), rs in groups(table).items():
        proto = program.split()[-1]
        ff = next((x for x in table if x[0] == link and x[1] == f"ffmpeg {proto}"), None)
        frames, carried = medians(rs)
        ok_frames = None if frames is None else frames >= FRAMES_TARGET
        ok_carried = None if not carried or None in carried else min(carried) >= CARRIED_TARGET
        beside = f" (ffmpeg: {ff[4]}, carried {', '.join(c for c in ff[5:8] if c != '-')})" if ff else ""
        shown = ", ".join("n/a" if c is None else f"{c:.0f}%" for c in carried)
        lines += [f"Targets ({link} kbit/s, {program}, {'cold' if cold else 'remembered'}, "
                  f"median of {len(rs)}): frames delivered "
                  f"{'n/a' if frames is None else f'{frames:.1f}%'} ≥ {FRAMES_TARGET:.0f}%: "
                  f"{verdict(ok_frames)}; link carried {shown} ≥ {CARRIED_TARGET:.0f}%: "
                  f"{verdict(ok_carried)}{beside}.", ""]
    return lines


def uplink_section(args, cmd):
    lines = ["## Shaped uplink (issues 8 and 14)", "",
             f"- command: `{cmd}` → `bench/uplink.sh` (DURATION={args.uplink_seconds}, "
             f"RUNS={args.uplink_runs})", ""]
    why = None
    if os.geteuid() != 0:
        why = "not root: a network namespace and tc need root"
    elif subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        why = "`ip netns` does not work here"
    elif not os.access(args.farmcast, os.X_OK):
        why = f"no binary at {args.farmcast}"
    if why:
        return lines + [f"Skipped: {why}.", "", "Targets: thin link from the first second: n/a", ""]
    print(f"uplink.sh, {args.uplink_seconds} s per run, farmcast's runs "
          f"{args.uplink_runs} times ...", flush=True)
    env = dict(os.environ, DURATION=str(args.uplink_seconds), FARMCAST_BIN=args.farmcast,
               RUNS=str(args.uplink_runs))
    runs = 4 * args.uplink_runs + 4
    out = subprocess.run(["bash", os.path.join(ROOT, "bench", "uplink.sh")], env=env,
                         capture_output=True, text=True,
                         timeout=runs * (args.uplink_seconds + 30) + 300)
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
    return lines + median_table(table) + targets(table)


def record(table):
    """The issue 14 summary's figures (`onair`): over farmcast's RTMP run
    kinds (fixed cold, fixed remembered, stepping), the worst median of the
    frames and of every carried window."""
    frames, carried = [], []
    for (_, program, _), rs in groups(table).items():
        if program != "farmcast RTMP":
            continue
        f, c = medians(rs)
        frames += [f] if f is not None else []
        carried += [v for v in c if v is not None]
    if frames:
        FIGURES["uplink_frames_pct"] = min(frames)
    if carried:
        FIGURES["uplink_carried_pct"] = min(carried)
