"""A minimal MQTT 3.1.1 client over a plain socket, standard library only:
CONNECT (clean session, no keep-alive), SUBSCRIBE and PUBLISH at QoS 0,
and reading the PUBLISH packets the broker sends. Enough for the benchmark
to time a command's round trip without spawning a process per request
(`mosquitto_sub`/`mosquitto_pub` would add their own start-up, tens of ms,
to every sample).
"""

import socket
import time


class MqttError(Exception):
    pass


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return len(b).to_bytes(2, "big") + b


def _packet(first, body):
    n, length = len(body), bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([first]) + bytes(length) + body


class Client:
    def __init__(self, port, client_id, host="127.0.0.1", timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.next_id = 1
        # Protocol "MQTT" level 4, clean session, keep-alive 0 (off).
        self.sock.sendall(_packet(0x10, _str("MQTT") + bytes([4, 0x02, 0, 0]) + _str(client_id)))
        kind, body = self._read(time.time() + timeout)
        if kind != 0x20 or len(body) < 2 or body[1] != 0:
            raise MqttError(f"CONNACK refused: {body!r}")

    def subscribe(self, topic, timeout=5):
        pid = self.next_id
        self.next_id += 1
        self.sock.sendall(_packet(0x82, pid.to_bytes(2, "big") + _str(topic) + b"\x00"))
        deadline = time.time() + timeout
        while True:
            kind, body = self._read(deadline)
            if kind is None:
                raise MqttError(f"no SUBACK for {topic} in {timeout} s")
            if kind == 0x90 and body[:2] == pid.to_bytes(2, "big"):
                if body[2:3] == b"\x80":
                    raise MqttError(f"SUBSCRIBE {topic} refused")
                return

    def publish(self, topic, payload, retain=False):
        if isinstance(payload, str):
            payload = payload.encode()
        self.sock.sendall(_packet(0x30 | (1 if retain else 0), _str(topic) + payload))

    def receive(self, timeout):
        """The next PUBLISH as (topic, payload bytes), or None after `timeout` s."""
        deadline = time.time() + timeout
        while True:
            try:
                kind, body = self._read(deadline)
            except socket.timeout:
                return None
            if kind is None:
                return None
            if kind & 0xF0 != 0x30 or len(body) < 2:
                continue
            n = int.from_bytes(body[:2], "big")
            topic = body[2:2 + n].decode(errors="replace")
            rest = body[2 + n:]
            if (kind >> 1) & 3:  # QoS 1/2 carry a packet id (we subscribe at 0)
                rest = rest[2:]
            return topic, rest

    def close(self):
        try:
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        except OSError:
            pass
        self.sock.close()

    def _read(self, deadline):
        """(first byte, body) of the next packet; (None, None) at the deadline."""
        while True:
            parsed = self._parse()
            if parsed:
                return parsed
            left = deadline - time.time()
            if left <= 0:
                return None, None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None, None
            if not chunk:
                raise MqttError("broker closed the connection")
            self.buf += chunk

    def _parse(self):
        if len(self.buf) < 2:
            return None
        length, mult, i = 0, 1, 1
        while True:
            if i >= len(self.buf) or i > 4:
                return None
            byte = self.buf[i]
            length += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        if len(self.buf) < i + length:
            return None
        first, body = self.buf[0], self.buf[i:i + length]
        self.buf = self.buf[i + length:]
        return first, body
