#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/seeds/<target>/): a few valid inputs per
target, in each target's input format, so that every run starts past the first checks.
Run from anywhere: python3 fuzz/seeds/make_seeds.py"""
import hashlib
import os
import struct

ROOT = os.path.dirname(os.path.abspath(__file__))


def put(target, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame(payload):
    return b"IX\x01\x00" + struct.pack("<I", len(payload)) + payload


# frame: 8 config bytes, a read pattern, then the stream (raw or described).
for msgs, pattern, max_mode in [
    ([b"hello", b"", b"world"], b"\x05\x00\xc8", 1),
    ([b"x" * 300, b"tail"], b"\x01", 1),
    ([b"a" * 70], b"\x40\x00", 0),
]:
    cfg = bytes([max_mode, 0x00, 0x04, 0, 0, len(pattern) - 1, 0, 0])
    put("frame", cfg + pattern + b"".join(frame(m) for m in msgs))
# Described frames: a 20 000-byte message (5000 times 4) and a 5-byte one, and a patch that lands somewhere.
cfg = bytes([2, 0, 0, 1, 50, 0, 1, 1])
spec = struct.pack("<H", 5000) + b"\x07\x80" + struct.pack("<H", 5) + b"\x41\x00"
put("frame", cfg + b"\x03" + spec + b"\x00" * 8)
put("frame", bytes([3, 0, 0, 0, 0, 0, 0, 0]) + b"\x10" + b"XX\x01\x00\x00\x00\x00\x00")

# mailbox_wire: descriptor count, then a datagram.
def mb(kind, flags, cid, length, body=b""):
    return b"IPMB\x01" + bytes([kind]) + struct.pack("<HQQ", flags, cid, length) + body


put("mailbox_wire", b"\x00" + mb(1, 0, 7, 4, b"ping"))
put("mailbox_wire", b"\x00" + mb(2, 0, 7, 4, b"pong"))
put("mailbox_wire", b"\x00" + mb(3, 0, 0, 0))
put("mailbox_wire", b"\x00" + mb(4, 0, 9, 6, struct.pack("<I", 2) + b"hi"))
put("mailbox_wire", b"\x01" + mb(3, 1, 0, 1 << 20))
put("mailbox_wire", b"\x02" + bytes([0, 0, 5, 0, 0, 0]) + b"body")

# ring_protocol: capacity shift, then ops (0/1 send LEN, 2 receive, 3 corrupt AT VALUE).
put("ring_protocol", bytes([2, 0, 10, 0, 20, 2, 2, 0, 40, 2]))
put("ring_protocol", bytes([0, 0, 0, 2, 0x80, 0, 2, 0, 3, 2, 0x80, 0, 2]))
put("ring_protocol", bytes([4, 0, 50, 0, 60, 2, 0x23, 1]) + struct.pack("<Q", 24) + bytes([2, 2]))
put("ring_protocol", bytes([3, 0, 8, 0xC3, 0]) + struct.pack("<Q", 1 << 40) + bytes([0, 100, 2]))

# ring_open: config (patch count), patches, then ops (0 send, 1 receive, 2 overwrite).
put("ring_open", bytes([0, 0, 1, 0x10, 1, 1, 0x81]))
put("ring_open", bytes([0, 4 << 2, 1, 0x82, 0, 7]) + b"\xff" * 8 + bytes([1, 1]))
put("ring_open", bytes([1, 0, 3, 0]) + b"XXXX" + bytes([0, 1]))
put("ring_open", bytes([1, 8, 0, 0]) + b"\x02\x00\x00\x00" + bytes([0, 1]))
put("ring_open", bytes([0, 8, 8, 8, 2, 32, 7]) + struct.pack("<Q", 1 << 20) + bytes([8, 1, 1]))

# addr: the grammar's examples.
for a in [
    "pipe:", "pipe:?max=4K", "fifo:/run/app/jobs.fifo?mode=0660", "unix:/run/app.sock",
    "unix-dgram:/run/app.dgram?max=64K", "unix-seqpacket:/run/app.seq",
    "tcp:localhost:7000?nodelay=false", "tcp:[::1]:7000", "udp:127.0.0.1:7001",
    "mq:/jobs?capacity=10&msgsize=8192&prio=3", "sysv-mq:0x4a4f4253?type=2",
    "shm:/jobs?capacity=4&max=1M", "ring:/jobs?capacity=65536&wait=busy",
    "mailbox:jobs", "mq:/100%25", "mq:/a%3Fb?prio=1", "fifo:/tmp/a%3Fb%00",
]:
    put("addr", a.encode())

# fd_passing: socket kind, then flags (low bits: creds, SO_PASSCRED, low RLIMIT_NOFILE;
# high nibble: number of picks), max_fds, buffer/17, limit slack, picks, data.
put("fd_passing", bytes([0, 0x20, 2, 1, 0, 0, 1]) + b"hello")
put("fd_passing", bytes([1, 0x33, 4, 4, 0, 0, 0x81, 2]) + b"datagram")
put("fd_passing", bytes([2, 0x40, 2, 2, 0, 0, 1, 2, 3]) + b"too many")
put("fd_passing", bytes([1, 0x24, 2, 2, 0, 5, 6]) + b"no room")
put("fd_passing", bytes([2, 0x00, 0, 0, 0]) + b"x" * 100)

# mailbox_datagram: how (1: start from a valid header; 2: claim another uid; 4: send
# unbound), descriptor count, seals, memfd size / 16, uid, then the datagram (or, with
# how & 1, kind, memfd flag, id, patch and the body).
put("mailbox_datagram", bytes([0, 0, 0, 0, 0]) + mb(3, 0, 0, 4, b"ping"))
put("mailbox_datagram", bytes([0, 0, 0, 0, 0]) + mb(1, 0, 5, 2, b"hi"))
put("mailbox_datagram", bytes([0, 1, 0x0F, 4, 0]) + mb(3, 1, 0, 64))
put("mailbox_datagram", bytes([1, 1, 0x05, 200, 0]) + bytes([0, 1, 5, 0]))
put("mailbox_datagram", bytes([3, 0, 0, 0, 7]) + bytes([2, 0, 0, 0]) + b"hi")
put("mailbox_datagram", bytes([5, 0, 0, 0, 0]) + bytes([1, 0, 9, 0]) + b"reply")
put("mailbox_datagram", bytes([1, 3, 0x0F, 1, 0]) + bytes([2, 1, 0, 0]))
