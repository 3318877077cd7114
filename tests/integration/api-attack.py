#!/usr/bin/env python3
"""Attacks on vfiod's API socket, for tests/integration/security-api.sh.

A D-Bus peer written with the standard library only (the socket, the SASL
EXTERNAL handshake and the message format of the D-Bus specification), so
that a test can do what a well-behaved client library never does: connect
and never authenticate, authenticate and never read, send a method call
with two million array entries. Each command prints one JSON object on
stdout (numbers for the test to check) and exits 0 when it could run the
attack, 1 when not (the reason on stderr).

  api-attack.py idle SOCKET N WAIT_S
      N connections that never send a byte. Waits up to WAIT_S seconds
      for vfiod to close them. Prints refused (closed at once, with the
      line vfiod sent, if any), closed_after_s (min/max, seconds from
      connect to EOF), still_open.
  api-attack.py noread SOCKET READY_FILE HOLD_S
      Authenticates (EXTERNAL, as the calling uid), then never reads.
      Writes READY_FILE when authenticated, waits until READY_FILE.done
      exists (at most HOLD_S seconds), then reads everything vfiod sent and
      reports: messages, signals (SandboxStateChanged), eof (vfiod closed
      the connection).
  api-attack.py huge SOCKET N [BDF]
      CreateSandbox({'devices': <[BDF] * N>}) on an authenticated
      connection; prints the reply (type, error name, message) and the
      seconds from the first byte sent to the reply.
  api-attack.py flood SOCKET N
      Sends N Peer.Ping calls back to back without reading the replies,
      then reads: how many replies came before vfiod closed the connection.
  api-attack.py creates SOCKET N
      N CreateSandbox({'gpus': <1>}) calls one after the other, reading
      every reply and signal (a well-behaved client making signals flow:
      each create that fails after it began emits "creating", "failed").
      Prints replies, errors by name, signals seen, eof.
  api-attack.py garbage SOCKET BYTES
      A method call whose body (BYTES bytes) is not what its signature
      says: GDBus cannot decode it (and logs it). Prints eof.
"""
import json
import os
import socket
import struct
import sys
import time

OBJ = "/org/vfiod/Manager1"
IFACE = "org.vfiod.Manager1"


def align(buf, n):
    buf.extend(b"\0" * (-len(buf) % n))


def marshal(buf, sig, value):
    """Appends @value of D-Bus type @sig (one complete type) to @buf (little endian)."""
    c = sig[0]
    if c == "y":
        buf.append(value)
    elif c in "bu":
        align(buf, 4)
        buf.extend(struct.pack("<I", int(value)))
    elif c == "i":
        align(buf, 4)
        buf.extend(struct.pack("<i", value))
    elif c in "so":
        b = value.encode()
        align(buf, 4)
        buf.extend(struct.pack("<I", len(b)) + b + b"\0")
    elif c == "g":
        b = value.encode()
        buf.extend(bytes([len(b)]) + b + b"\0")
    elif c == "v":
        vsig, vval = value
        marshal(buf, "g", vsig)
        marshal(buf, vsig, vval)
    elif c == "a":
        elem = sig[1:]
        align(buf, 4)
        at = len(buf)
        buf.extend(b"\0\0\0\0")
        align(buf, 8 if elem[0] in "({xtd" else {"y": 1, "n": 2, "q": 2}.get(elem[0], 4))
        start = len(buf)
        if elem[0] == "{":
            ksig, vsig = elem[1], elem[2:-1]
            for k, v in value:
                align(buf, 8)
                marshal(buf, ksig, k)
                marshal(buf, vsig, v)
        elif elem == "s" and isinstance(value, RepeatedString):
            one = value.encoded()
            if value.n:
                buf.extend(one * (value.n - 1))
                buf.extend(one[:4 + len(value.s.encode()) + 1])  # no padding after the last
        else:
            for v in value:
                marshal(buf, elem, v)
        struct.pack_into("<I", buf, at, len(buf) - start)
    elif c == "(":
        align(buf, 8)
        for s, v in zip(split_sig(sig[1:-1]), value):
            marshal(buf, s, v)
    else:
        raise ValueError("type " + sig)


class RepeatedString:
    """N copies of one string in an 'as', marshalled without a Python loop."""

    def __init__(self, s, n):
        self.s, self.n = s, n

    def encoded(self):
        b = self.s.encode()
        one = struct.pack("<I", len(b)) + b + b"\0"
        return one + b"\0" * (-len(one) % 4)


def split_sig(sig):
    out, i = [], 0
    while i < len(sig):
        j = i
        while sig[j] == "a":
            j += 1
        if sig[j] in "({":
            depth, k = 0, j
            while True:
                depth += sig[k] in "({"
                depth -= sig[k] in ")}"
                k += 1
                if depth == 0:
                    break
            j = k - 1
        out.append(sig[i:j + 1])
        i = j + 1
    return out


SERIAL = [0]


def method_call(member, sig="", args=(), iface=IFACE, path=OBJ):
    SERIAL[0] += 1
    body = bytearray()
    for s, v in zip(split_sig(sig), args):
        marshal(body, s, v)
    fields = [(1, ("o", path)), (3, ("s", member))]
    if iface:
        fields.append((2, ("s", iface)))
    if sig:
        fields.append((8, ("g", sig)))
    hdr = bytearray(b"l\x01\x00\x01")
    hdr.extend(struct.pack("<II", len(body), SERIAL[0]))
    marshal(hdr, "a(yv)", fields)
    align(hdr, 8)
    return bytes(hdr) + bytes(body)


def authenticate(sock):
    sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("vfiod closed the connection during authentication: %r" % line)
        line += chunk
    if not line.startswith(b"OK "):
        raise RuntimeError("authentication refused: %r" % line)
    sock.sendall(b"BEGIN\r\n")


def read_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            return None
        out.extend(chunk)
    return bytes(out)


def read_message(sock):
    """(type, fields {code: value}, body bytes) or None at EOF."""
    fixed = read_exact(sock, 16)
    if fixed is None:
        return None
    endian = "<" if fixed[0:1] == b"l" else ">"
    mtype = fixed[1]
    body_len, _, fields_len = struct.unpack(endian + "III", fixed[4:16])
    rest = read_exact(sock, fields_len + (-(16 + fields_len) % 8) + body_len)
    if rest is None:
        return None
    fields, off = {}, 0
    raw = rest[:fields_len]
    while off < len(raw):
        off += -off % 8
        code = raw[off]
        slen = raw[off + 1]
        vsig = raw[off + 2:off + 2 + slen].decode()
        off += 3 + slen
        if vsig in "so":
            off += -off % 4
            (n,) = struct.unpack_from(endian + "I", raw, off)
            fields[code] = raw[off + 4:off + 4 + n].decode(errors="replace")
            off += 5 + n
        elif vsig == "g":
            n = raw[off]
            fields[code] = raw[off + 1:off + 1 + n].decode()
            off += 2 + n
        elif vsig == "u":
            off += -off % 4
            (fields[code],) = struct.unpack_from(endian + "I", raw, off)
            off += 4
        else:
            break
    body = rest[len(rest) - body_len:]
    return mtype, fields, body


def first_string(body):
    if len(body) < 4:
        return ""
    (n,) = struct.unpack_from("<I", body, 0)
    return body[4:4 + n].decode(errors="replace")


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def cmd_idle(path, n, wait_s):
    socks, opened, refused, lines = [], [], 0, []
    for _ in range(n):
        try:
            s = connect(path)
        except OSError as e:
            refused += 1
            lines.append("connect: " + e.strerror)
            continue
        s.setblocking(False)
        socks.append(s)
        opened.append(time.monotonic())
    closed_after = [None] * len(socks)
    end = time.monotonic() + wait_s
    while time.monotonic() < end and any(c is None for c in closed_after):
        for i, s in enumerate(socks):
            if closed_after[i] is not None:
                continue
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                lines.append(data.decode(errors="replace").strip())
                continue
            closed_after[i] = time.monotonic() - opened[i]
        time.sleep(0.05)
    times = [t for t in closed_after if t is not None]
    # closed within a second: refused at accept; later: the auth timeout
    quick = sum(1 for t in times if t < 1.0)
    print(json.dumps({
        "connected": len(socks), "connect_failed": refused, "closed_at_once": quick,
        "closed_later": len(times) - quick, "still_open": len(socks) - len(times),
        "closed_after_s_min": round(min((t for t in times if t >= 1.0), default=0), 2),
        "closed_after_s_max": round(max(times, default=0), 2),
        "lines": sorted(set(lines))[:5],
    }))
    for s in socks:
        s.close()
    return 0


def cmd_noread(path, ready_file, hold_s):
    s = connect(path)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    authenticate(s)
    with open(ready_file, "w") as f:
        f.write("%d\n" % os.getpid())
    end = time.monotonic() + hold_s
    while time.monotonic() < end and not os.path.exists(ready_file + ".done"):
        time.sleep(0.1)
    s.settimeout(5)
    total, signals, eof = 0, 0, False
    try:
        while True:
            m = read_message(s)
            if m is None:
                eof = True
                break
            mtype, fields, body = m
            total += 1
            if mtype == 4 and fields.get(3) == "SandboxStateChanged":
                signals += 1
    except socket.timeout:
        pass
    except OSError:
        eof = True
    print(json.dumps({"messages": total, "signals": signals, "eof": eof}))
    return 0


def cmd_huge(path, n, bdf):
    s = connect(path)
    authenticate(s)
    msg = method_call("CreateSandbox", "a{sv}", [[("devices", ("as", RepeatedString(bdf, n)))]])
    t0 = time.monotonic()
    s.sendall(msg)
    s.settimeout(120)
    m = read_message(s)
    while m is not None and m[0] == 4:  # signals (SandboxStateChanged): not the reply
        m = read_message(s)
    dt = time.monotonic() - t0
    if m is None:
        print(json.dumps({"size": len(msg), "seconds": round(dt, 3), "reply": "eof"}))
        return 0
    mtype, fields, body = m
    print(json.dumps({"size": len(msg), "seconds": round(dt, 3),
                      "reply": {2: "return", 3: "error"}.get(mtype, str(mtype)),
                      "error": fields.get(4, ""), "message": first_string(body) if mtype == 3 else ""}))
    return 0


def cmd_flood(path, n):
    s = connect(path)
    authenticate(s)
    s.settimeout(10)
    sent = 0
    t0 = time.monotonic()
    while sent < n:
        batch = min(1000, n - sent)
        try:
            s.sendall(b"".join(method_call("Ping", iface="org.freedesktop.DBus.Peer") for _ in range(batch)))
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            break
        sent += batch
    s.settimeout(5)
    replies, errors, eof = 0, {}, False
    try:
        while True:
            m = read_message(s)
            if m is None:
                eof = True
                break
            if m[0] == 2:
                replies += 1
            elif m[0] == 3:
                errors[m[1].get(4, "?")] = errors.get(m[1].get(4, "?"), 0) + 1
    except socket.timeout:
        pass
    except OSError:
        eof = True
    print(json.dumps({"sent": sent, "replies": replies, "errors": errors, "eof": eof,
                      "seconds": round(time.monotonic() - t0, 2)}))
    return 0


def cmd_creates(path, n):
    s = connect(path)
    authenticate(s)
    s.settimeout(30)
    replies, errors, signals, eof = 0, {}, 0, False
    t0 = time.monotonic()
    for _ in range(n):
        s.sendall(method_call("CreateSandbox", "a{sv}", [[("gpus", ("u", 1))]]))
        while True:
            m = read_message(s)
            if m is None:
                eof = True
                break
            if m[0] == 4:
                signals += 1
                continue
            replies += 1
            if m[0] == 3:
                errors[m[1].get(4, "?")] = errors.get(m[1].get(4, "?"), 0) + 1
            break
        if eof:
            break
    # the signals of the last create may follow its reply
    s.settimeout(0.5)
    try:
        while True:
            m = read_message(s)
            if m is None:
                break
            signals += m[0] == 4
    except socket.timeout:
        pass
    print(json.dumps({"replies": replies, "errors": errors, "signals": signals, "eof": eof,
                      "seconds": round(time.monotonic() - t0, 2)}))
    return 0


def cmd_garbage(path, n):
    s = connect(path)
    authenticate(s)
    SERIAL[0] += 1
    body = b"\xff" * n
    fields = [(1, ("o", OBJ)), (3, ("s", "CreateSandbox")), (2, ("s", IFACE)), (8, ("g", "a{sv}"))]
    hdr = bytearray(b"l\x01\x00\x01")
    hdr.extend(struct.pack("<II", len(body), SERIAL[0]))
    marshal(hdr, "a(yv)", fields)
    align(hdr, 8)
    s.sendall(bytes(hdr) + body)
    s.settimeout(10)
    eof = False
    try:
        eof = read_message(s) is None
    except socket.timeout:
        pass
    except OSError:
        eof = True
    print(json.dumps({"size": len(hdr) + n, "eof": eof}))
    return 0


def main(argv):
    try:
        if argv[1] == "idle":
            return cmd_idle(argv[2], int(argv[3]), float(argv[4]))
        if argv[1] == "noread":
            return cmd_noread(argv[2], argv[3], float(argv[4]))
        if argv[1] == "huge":
            return cmd_huge(argv[2], int(argv[3]), argv[4] if len(argv) > 4 else "0000:00:00.0")
        if argv[1] == "flood":
            return cmd_flood(argv[2], int(argv[3]))
        if argv[1] == "creates":
            return cmd_creates(argv[2], int(argv[3]))
        if argv[1] == "garbage":
            return cmd_garbage(argv[2], int(argv[3]))
    except (OSError, RuntimeError) as e:
        print("api-attack: %s" % e, file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
