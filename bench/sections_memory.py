"""Memory and CPU (issue 14): what each part of farmcast costs.

Two tables. The daemon itself on the main table's input and encode (one
RTMP destination, recording off), once as built and once per variant that
turns one thing back or on, without a rebuild: transparent huge pages
(`FARMCAST_THP=1`), glibc's default malloc arenas (`MALLOC_ARENA_MAX`),
AAC through gst-libav (a plugin path without voaacenc, so `avenc_aac` is
the one found), recording, a second destination. Then the pipeline's parts
alone under gst-launch-1.0, each a step up from the one before, and what a
read of the kernel's TCP tables costs (the daemon's old congestion read).

Peak RSS and CPU come from wait4() on the process; the daemon's CPU per
thread from /proc/PID/task just before it is stopped (x264's threads carry
the name of the thread that made them, `camera_in:src`).
"""

import collections
import ctypes
import os
import re
import shutil
import signal
import statistics
import subprocess
import time

from common import (X264_VBV_MS, NotAvailable, Nginx, count_video_packets, fmt, tail,
                    write_farmcast)

PR_SET_THP_DISABLE = 41


def no_thp():
    """preexec_fn: no transparent huge pages in the child (as the daemon does)."""
    ctypes.CDLL(None).prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)


def run_measured(argv, seconds, env=None, stop=signal.SIGINT, preexec=None, log=os.devnull):
    """Runs argv for `seconds`, stops it; (cpu s, peak RSS MiB from wait4(), VmHWM MiB
    just before the stop, CPU s by thread name). wait4()'s figure counts the memory
    of the forked Python child before its exec (~25 MiB); VmHWM starts at the exec."""
    with open(log, "w") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                env=env, start_new_session=True, preexec_fn=preexec)
    deadline = time.time() + seconds
    threads, hwm = {}, None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise NotAvailable(f"{argv[0]} exited early ({proc.returncode}): {tail(log)}")
        threads = thread_cpu(proc.pid) or threads
        hwm = vm_hwm(proc.pid) or hwm
        time.sleep(0.25)
    os.kill(proc.pid, stop)
    end = time.time() + 15
    while time.time() < end:
        pid, _, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.05)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        _, _, ru = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, hwm, threads


def vm_hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmHWM:\s+(\d+) kB", f.read())
    except OSError:
        return None
    return int(m.group(1)) / 1024 if m else None


def thread_cpu(pid):
    """CPU seconds per thread name (digits folded: `filesrc0:src` -> `filesrc#:src`)."""
    out = collections.Counter()
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                s = f.read()
        except OSError:
            continue
        name = re.sub(r"\d+", "#", s[s.index("(") + 1:s.rindex(")")])
        fields = s[s.rindex(")") + 2:].split()
        out[name] += (int(fields[11]) + int(fields[12])) / tick
    return out


def without_plugin(run_dir, element):
    """Environment for a GStreamer that does not have `element`'s plugin (a
    plugin directory of links to every other one, and a registry of its own)."""
    info = subprocess.run(["gst-inspect-1.0", element], capture_output=True, text=True)
    m = re.search(r"Filename\s+(\S+)", info.stdout)
    if not m:
        raise NotAvailable(f"{element} is not installed")
    system_dir, skip = os.path.split(m.group(1))
    plugins = os.path.join(run_dir, f"plugins-without-{element}")
    shutil.rmtree(plugins, ignore_errors=True)
    os.makedirs(plugins)
    for name in os.listdir(system_dir):
        if name != skip:
            os.symlink(os.path.join(system_dir, name), os.path.join(plugins, name))
    env = dict(os.environ, GST_PLUGIN_SYSTEM_PATH_1_0=plugins, GST_PLUGIN_PATH_1_0="",
               GST_REGISTRY_1_0=os.path.join(run_dir, f"registry-without-{element}.bin"))
    # Build that registry now, not inside a measured run.
    subprocess.run(["gst-inspect-1.0", "fakesink"], env=env, capture_output=True)
    return env


def edit_config(path, old, new):
    with open(path) as f:
        text = f.read()
    if old not in text:
        raise NotAvailable(f"the bench config has no {old!r}")
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def daemon_variants(run_dir):
    """(label, env overrides or None, config edit or None), the first as built."""
    arenas = 8 * (os.cpu_count() or 1)
    try:
        libav_env = without_plugin(run_dir, "voaacenc")
    except NotAvailable as e:
        libav_env = e
    return [
        ("as built", {}, None),
        ("transparent huge pages back (`FARMCAST_THP=1`)", {"FARMCAST_THP": "1"}, None),
        (f"glibc's default arenas (`MALLOC_ARENA_MAX={arenas}`, 8 per core)",
         {"MALLOC_ARENA_MAX": str(arenas)}, None),
        ("AAC by `avenc_aac`: gst-libav loaded (voaacenc hidden)", libav_env, None),
        ("recording on (`recording.enabled = true`)", {},
         ("[recording]\nenabled = false", "[recording]\nenabled = true")),
        ("a second RTMP destination", {}, "second"),
    ]


def farmcast_runs(fc, run_dir, clip, runs, seconds):
    """Runs each variant `runs` times, interleaved; returns {label: [(cpu, rss, threads, frames)]}."""
    work = os.path.join(run_dir, "memory")
    os.makedirs(work, exist_ok=True)
    nginx = Nginx(work)
    variants = daemon_variants(work)
    results = {label: [] for label, _, _ in variants}
    reasons = {}
    try:
        for i in range(runs):
            for n, (label, env, edit) in enumerate(variants):
                if isinstance(env, Exception):
                    reasons[label] = str(env)
                    continue
                stream = f"mem{n}-{i}"
                cfg, _ = write_farmcast(work, nginx, clip, stream, autostart=True)
                if edit == "second":
                    with open(cfg, "a") as f:
                        f.write(f'\n[[destinations]]\nname = "second"\n'
                                f'url = "{nginx.base_url()}"\nkey = "{stream}-b"\n')
                elif edit:
                    edit_config(cfg, *edit)
                known = len(nginx.publish_times())
                print(f"farmcast {label}, run {i + 1}/{runs} ...", flush=True)
                try:
                    cpu, rss, _, threads = run_measured(
                        [fc, "run", "--config", cfg], seconds,
                        env=dict(os.environ, RUST_LOG="info", **env), stop=signal.SIGTERM,
                        log=os.path.join(work, f"{stream}.log"))
                except NotAvailable as e:
                    reasons[label] = str(e)[:300]
                    continue
                nginx.wait_idle()
                if len(nginx.publish_times()) <= known:
                    reasons[label] = "never published"
                    continue
                frames = count_video_packets(nginx.recordings(stream))
                print(f"  cpu={cpu:.2f} s, peak RSS={rss:.1f} MiB, frames={frames}", flush=True)
                results[label].append((cpu, rss, threads, frames))
    finally:
        nginx.close()
    return results, reasons


def gst_parts(clip):
    """(id, label, argv): gst-launch-1.0 parts, all but `x264thp` without huge pages,
    then ffmpeg's own for the same work, as the main table runs it (huge pages as
    the system gives them)."""
    x264 = ("x264enc speed-preset=veryfast tune=zerolatency bitrate=2500 key-int-max=60 "
            f"vbv-buf-capacity={X264_VBV_MS} rc-lookahead=0 bframes=0 ! video/x-h264,profile=main")
    audio = ("audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! "
             "audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2 ! audioconvert "
             "! {} "
             "bitrate=128000 ! aacparse ! fakesink")
    y4m = f"filesrc location={clip} blocksize={{}} ! y4mdec ! clocksync"
    gst = [(key, label, ["gst-launch-1.0", "-q", "-e"] + desc.split())
           for key, label, desc in gst_descriptions(clip, x264, audio, y4m)]
    ff = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error"]
    ff_x264 = ["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
               "-b:v", "2500k", "-maxrate", "2500k", "-bufsize", f"{2500 * X264_VBV_MS // 1000}k",
               "-g", "60", "-keyint_min", "60", "-pix_fmt", "yuv420p", "-profile:v", "main"]
    return gst + [
        ("ffy4m", "ffmpeg: y4m read (`-re`, `-c:v rawvideo`, null output)",
         ff + ["-re", "-i", clip, "-c:v", "rawvideo", "-f", "null", "-"]),
        ("ffx264", "ffmpeg: + x264 720p (libx264, the same settings)",
         ff + ["-re", "-i", clip] + ff_x264 + ["-f", "null", "-"]),
        ("ffaac", "ffmpeg: AAC 128k alone (its own `aac`)",
         ff + ["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
               "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "null", "-"]),
    ]


def gst_descriptions(clip, x264, audio, y4m):
    return [
        ("gst", "GStreamer idle (a live source, one buffer a second, into fakesink)",
         "audiotestsrc is-live=true samplesperbuffer=48000 ! fakesink"),
        ("y4m4k", "y4m read + parse, 4 KiB reads (filesrc's default)",
         f"{y4m.format(4096)} ! fakesink"),
        ("y4m64k", "y4m read + parse, 64 KiB reads (farmcast for clips it does not read itself)", f"{y4m.format(65536)} ! fakesink"),
        ("x264thp", "+ x264 720p, huge pages (the process's default)",
         f"{y4m.format(65536)} ! {x264} ! fakesink"),
        ("x264", "+ x264 720p, no huge pages (farmcast)", f"{y4m.format(65536)} ! {x264} ! fakesink"),
        ("x264t1", "+ x264 `threads=1` (no huge pages)",
         f"{y4m.format(65536)} ! {x264.replace('x264enc ', 'x264enc threads=1 ')} ! fakesink"),
        ("libav", "AAC 128k alone, `avenc_aac` (gst-libav)", audio.format("avenc_aac")),
        ("voaac", "AAC 128k alone, `voaacenc` (farmcast)", audio.format("voaacenc")),
    ]


def gst_runs(clip, runs, seconds):
    out = {}
    for i in range(runs):
        for key, label, argv in gst_parts(clip):
            print(f"{label}, run {i + 1}/{runs} ...", flush=True)
            # ffmpeg runs as the main table runs it; the gst-launch parts as
            # farmcast runs them, without huge pages (but `x264thp`).
            thp = key == "x264thp" or argv[0] == "ffmpeg"
            try:
                cpu, _, hwm, _ = run_measured(argv, seconds, preexec=None if thp else no_thp)
            except NotAvailable as e:
                print(f"  n/a: {e}", flush=True)
                continue
            out.setdefault((key, label), []).append((cpu, hwm, seconds))
    return out


def tcp_table_read_ms(reads=100):
    """Milliseconds one read of /proc/net/tcp and /proc/net/tcp6 takes here."""
    t = time.perf_counter()
    for _ in range(reads):
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(path) as f:
                    f.read()
            except OSError:
                pass
    return (time.perf_counter() - t) * 1000 / reads


def spread(rows):
    if not rows:
        return ""
    cpu, rss = [r[0] for r in rows], [r[1] for r in rows]
    return f"{min(cpu):.2f}–{max(cpu):.2f}, {min(rss):.1f}–{max(rss):.1f}"


def _med(rows, i):
    vals = [r[i] for r in rows]
    return statistics.median(vals) if vals else None


def memory_section(fc, run_dir, clip, runs, seconds, cmd):
    lines = ["## Memory and CPU: what each part costs (issue 14)", "",
             f"- command: `{cmd}` (runs={runs}, seconds={seconds})", ""]
    daemon, reasons = farmcast_runs(fc, run_dir, clip, runs, seconds)
    parts = gst_runs(clip, runs, max(seconds // 2, 5))
    tcp_ms = tcp_table_read_ms()
    base = daemon.get("as built", [])
    base_rss, base_cpu = _med(base, 1), _med(base, 0)
    lines += [
        "farmcast on the main table's input and encode (1280x720 30 fps y4m clip, x264 "
        "veryfast/zerolatency 2500 kbit/s, AAC 128k, one RTMP destination to a loopback "
        f"nginx-rtmp, recording off), {seconds} s a run, variants interleaved, medians of "
        f"{runs}. Each variant turns one thing back (or on) without a rebuild. Peak RSS and "
        "CPU from wait4().", "",
        "| farmcast | runs | CPU s | CPU % of one core | peak RSS MiB | RSS vs as built MiB "
        "| runs' spread: CPU s, peak RSS MiB | video frames at server | note |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for label, rows in daemon.items():
        cpu, rss = _med(rows, 0), _med(rows, 1)
        delta = None if rss is None or base_rss is None else rss - base_rss
        lines.append(
            f"| {label} | {len(rows)} | {fmt(cpu, 2)} | "
            f"{fmt(None if cpu is None else 100 * cpu / seconds, 1)} | {fmt(rss, 1)} | "
            f"{'' if delta is None or not rows or label == 'as built' else f'{delta:+.1f}'} | "
            f"{spread(rows)} | {fmt(_med(rows, 3))} | "
            f"{reasons.get(label, '').replace('|', '/')} |")
    if base:
        names = set().union(*(r[2] for r in base))
        by = {n: statistics.median(r[2].get(n, 0.0) for r in base) for n in names}
        total = sum(by.values()) or 1.0
        lines += ["", "Where farmcast's CPU goes (as built, by thread, /proc/PID/task just "
                  "before the stop; medians):", "", "| thread | CPU s | share |",
                  "| --- | ---: | ---: |"]
        for n, v in sorted(by.items(), key=lambda kv: -kv[1]):
            if v >= 0.005 * total:
                lines.append(f"| `{n}` | {v:.2f} | {100 * v / total:.1f}% |")
        lines += ["", "`camera_in:src` is the encode pipeline's video thread and x264's own "
                  "threads (they take the name of the thread that made them): overlays, "
                  "scale and convert (pass-through at the configured size) and the encode. "
                  "`clip_in:src` reads the clip, a frame a read (a camera's capture thread on a "
                  "box), `mic_in:src` the AAC encode, `farmcast` the daemon's own loop.",
                  "",
                  "Against ffmpeg (the main table): x264's settings are the same in every "
                  "peer (the option string x264 writes into the stream differs only "
                  "in `keyint_min`, which ffmpeg derives from `-g`), and the encode "
                  "pipeline's convert, scale and overlays pass frames through untouched. "
                  f"Outside the encode thread group farmcast spent "
                  f"{total - by.get('camera_in:src', 0.0):.2f} s: the clip's read and parse "
                  "(one read a frame into a pooled buffer, as ffmpeg reads it; gst-launch's "
                  "y4mdec copies every frame again out of the blocks filesrc read), "
                  "the sound (test tone, inter elements, AAC), muxing and sending."]
    lines += ["", f"The pipeline's parts alone under gst-launch-1.0, and the same work under "
              f"ffmpeg ({max(seconds // 2, 5)} s a run, medians of {runs}; the same clip, x264 "
              "and AAC settings):", "",
              "| part | CPU % of one core | peak RSS (VmHWM) MiB |", "| --- | ---: | ---: |"]
    med_part = {}
    for (key, label), rows in parts.items():
        cpu = statistics.median(r[0] / r[2] for r in rows)
        rss = _med(rows, 1)
        med_part[key] = (100 * cpu, rss)
        lines.append(f"| {label} | {100 * cpu:.1f} | {rss:.1f} |")
    lines += ["", f"A read of `/proc/net/tcp` and `/proc/net/tcp6` here: {tcp_ms:.2f} ms "
              f"(median of 100; the kernel walks its whole connection hash for each). The "
              f"daemon read both on every health tick (4 a second): "
              f"{0.4 * tcp_ms:.1f}% of one core, before this section's change (it now asks "
              "its own sockets). ", ""]
    lines += costs(daemon, base_rss, base_cpu, med_part, seconds)
    ok = None if base_rss is None else base_rss <= 64
    lines += ["", f"Targets: peak RSS ≤ 64 MiB (main table's config): "
              f"{fmt(base_rss, 1)} MiB — {'met' if ok else 'n/a' if ok is None else '**not met**'}"
              "; CPU ≤ 1.00× ffmpeg: see the main table (side by side in one run).", ""]
    return lines


def costs(daemon, base_rss, base_cpu, part, seconds):
    """The differences the tables measure, one line each."""
    out = ["What each part costs (differences of the medians above). The daemon's CPU "
           "differences are only as good as the runs' spread in the first table (a shared "
           "machine moves it by a second or more); the gst-launch rows measure each part's "
           "CPU alone:", ""]

    def d(label):
        rows = daemon.get(label) or []
        if not rows or base_rss is None:
            return None
        return _med(rows, 1) - base_rss, 100 * (_med(rows, 0) - base_cpu) / seconds

    for label, what in [
            ("AAC by `avenc_aac`: gst-libav loaded (voaacenc hidden)",
             "gst-libav for AAC (now voaacenc)"),
            ("transparent huge pages back (`FARMCAST_THP=1`)",
             "transparent huge pages (now off)"),
            (next((k for k in daemon if k.startswith("glibc's default arenas")), ""),
             "glibc's default malloc arenas (now 2)"),
            ("recording on (`recording.enabled = true`)", "recording (a feature: kept)"),
            ("a second RTMP destination", "each further destination (a feature: kept)")]:
        got = d(label)
        if got:
            out.append(f"- {what}: {got[0]:+.1f} MiB peak RSS, {got[1]:+.1f} points of one "
                       "core")
    p = part

    def diff(a, b, i):
        return p[a][i] - p[b][i]

    if {"y4m4k", "y4m64k"} <= p.keys():
        out.append(f"- y4m reads of 64 KiB instead of 4 KiB: {diff('y4m64k', 'y4m4k', 0):+.1f} "
                   f"points of one core, {diff('y4m64k', 'y4m4k', 1):+.1f} MiB")
    if {"x264", "x264thp", "y4m64k"} <= p.keys():
        out.append(f"- x264 at 720p: {diff('x264', 'y4m64k', 1):.1f} MiB without huge pages, "
                   f"{diff('x264thp', 'y4m64k', 1):.1f} MiB with them; CPU "
                   f"{diff('x264', 'x264thp', 0):+.1f} points without")
    if {"x264", "x264t1"} <= p.keys():
        out.append(f"- x264 `threads=1` instead of one per core: {diff('x264t1', 'x264', 1):+.1f} "
                   f"MiB, {diff('x264t1', 'x264', 0):+.1f} points (kept at one per core: on a "
                   "slow box a 720p frame must still fit in 33 ms)")
    if {"libav", "voaac"} <= p.keys():
        out.append(f"- gst-libav for AAC, alone: {diff('libav', 'voaac', 1):+.1f} MiB, "
                   f"{diff('libav', 'voaac', 0):+.1f} points against voaacenc")
    if {"x264", "x264thp", "y4m64k", "ffx264", "ffy4m"} <= p.keys():
        out.append(f"- x264 at 720p under each (its row less the read's): GStreamer "
                   f"{diff('x264', 'y4m64k', 0):.1f} points (no huge pages), "
                   f"{diff('x264thp', 'y4m64k', 0):.1f} with them; ffmpeg "
                   f"{diff('ffx264', 'ffy4m', 0):.1f}")
    if {"ffaac", "voaac"} <= p.keys():
        out.append(f"- AAC 128k: voaacenc (farmcast) {p['voaac'][0]:.1f} points, ffmpeg's "
                   f"`aac` {p['ffaac'][0]:.1f}")
    return out
