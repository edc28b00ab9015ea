"""The phone page's cost: the daemon's CPU (utime+stime from /proc) in
standby with a 640x360 test source, 20 s with no phone, then 20 s with one
phone fetching the preview as the page does (a JPEG, 400 ms pause), twice.
Usage: python3 bench/web_preview_cpu.py [path/to/farmcast]"""
import json, os, socket, subprocess, sys, tempfile, time, http.client
BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/farmcast"
s0 = socket.socket(); s0.bind(("127.0.0.1", 0)); port = s0.getsockname()[1]; s0.close()
d = tempfile.mkdtemp(prefix="farmcast-webbench-")
os.makedirs(d + "/rec", exist_ok=True)
cfg = f'''device_id = "bench"
state_dir = "{d}/state"
[video]
source = "test"
width = 640
height = 360
framerate = 30
bitrate_kbps = 1000
encoder = "x264enc"
x264_preset = "ultrafast"
[audio]
source = "test"
[recording]
enabled = false
dir = "{d}/rec"
[gpio]
backend = "sim"
sim_socket = "{d}/sim.sock"
[web]
enabled = true
listen = "127.0.0.1:{port}"
pairing_code = "123456"
'''
open(d + "/f.toml", "w").write(cfg)
p = subprocess.Popen([BIN, "run", "--config", d + "/f.toml"], stdout=open(d + "/log", "w"), stderr=subprocess.STDOUT)
def ticks():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
hz = os.sysconf("SC_CLK_TCK")
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port)).close(); break
    except OSError: time.sleep(0.2)
time.sleep(5)
def measure(secs, watch):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", "/login", json.dumps({"code": "123456"}), {"Content-Type": "application/json"})
    r = c.getresponse(); r.read()
    cookie = r.getheader("set-cookie").split(";")[0]
    t0, c0, frames = time.time(), ticks(), 0
    while time.time() - t0 < secs:
        if watch:
            c = http.client.HTTPConnection("127.0.0.1", port)
            c.request("GET", "/api/preview.jpg", headers={"Cookie": cookie})
            r = c.getresponse(); b = r.read(); frames += r.status == 200
            time.sleep(0.4)
        else:
            time.sleep(0.5)
    dt = time.time() - t0
    return (ticks() - c0) / hz / dt * 100, frames / dt
res = {}
for rnd in range(2):
    for watch in (False, True):
        cpu, fps = measure(20, watch)
        res.setdefault(watch, []).append((round(cpu, 1), round(fps, 2)))
print(res)
p.terminate(); p.wait()
