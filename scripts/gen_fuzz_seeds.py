#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_envelope.c: valid envelopes of every
kind and a few payload shapes.

The msgpack encoder below is deliberately minimal and hand-written so the
script needs only the standard library; it is for seeds, not for talking to
actorflow. Run from anywhere:  python3 scripts/gen_fuzz_seeds.py
"""
import os
import struct


class Ext:
    def __init__(self, code, data):
        self.code, self.data = code, data


class Float32:
    def __init__(self, value):
        self.value = value


class Wide:
    """A list or dict written with a 32-bit count, the way the C writer's
    af_pack_array_begin/af_pack_map_begin write theirs."""

    def __init__(self, value):
        self.value = value


def pack(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack(">b", v)
        if v >= 0:
            for fmt, tag in ((">B", 0xCC), (">H", 0xCD), (">I", 0xCE),
                             (">Q", 0xCF)):
                try:
                    return bytes([tag]) + struct.pack(fmt, v)
                except struct.error:
                    pass
        for fmt, tag in ((">b", 0xD0), (">h", 0xD1), (">i", 0xD2),
                         (">q", 0xD3)):
            try:
                return bytes([tag]) + struct.pack(fmt, v)
            except struct.error:
                pass
        raise ValueError(v)
    if isinstance(v, Float32):
        return b"\xca" + struct.pack(">f", v.value)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        n = len(b)
        if n <= 31:
            return bytes([0xA0 | n]) + b
        if n <= 0xFF:
            return b"\xd9" + struct.pack(">B", n) + b
        if n <= 0xFFFF:
            return b"\xda" + struct.pack(">H", n) + b
        return b"\xdb" + struct.pack(">I", n) + b
    if isinstance(v, (bytes, bytearray)):
        n = len(v)
        if n <= 0xFF:
            return b"\xc4" + struct.pack(">B", n) + bytes(v)
        if n <= 0xFFFF:
            return b"\xc5" + struct.pack(">H", n) + bytes(v)
        return b"\xc6" + struct.pack(">I", n) + bytes(v)
    if isinstance(v, Ext):
        n = len(v.data)
        fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
        code = struct.pack(">b", v.code)
        if n in fixed:
            return bytes([fixed[n]]) + code + v.data
        return b"\xc7" + struct.pack(">B", n) + code + v.data
    if isinstance(v, Wide):
        if isinstance(v.value, dict):
            out = b"\xdf" + struct.pack(">I", len(v.value))
            return out + b"".join(pack(k) + pack(x)
                                  for k, x in v.value.items())
        out = b"\xdd" + struct.pack(">I", len(v.value))
        return out + b"".join(pack(x) for x in v.value)
    if isinstance(v, (list, tuple)):
        n = len(v)
        head = (bytes([0x90 | n]) if n <= 15
                else b"\xdc" + struct.pack(">H", n))
        return head + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = (bytes([0x80 | n]) if n <= 15
                else b"\xde" + struct.pack(">H", n))
        return head + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(type(v))


TELL, REQUEST, REPLY, ERROR, CHUNK, END, CANCEL, HEARTBEAT = range(1, 9)


def envelope(kind, id_=0, seq=0, type_=None, ttl=0, to=None, payload=None,
             version=1):
    return pack([version, kind, id_, seq, type_, ttl, to, payload])


def nested(depth):
    v = "leaf"
    for i in range(depth):
        v = [v] if i % 2 else {"k": v}
    return v


SEEDS = {
    "tell": envelope(TELL, type_="log", to="logger",
                     payload={"line": "hello"}),
    "request": envelope(REQUEST, 42, 0, "echo", 5000, "echo",
                        {"text": "hi", "n": 3}),
    "reply": envelope(REPLY, 42, payload={"text": "hi"}),
    "error": envelope(ERROR, 42, payload={"code": 5,
                                          "message": "deadline passed"}),
    "chunk": envelope(CHUNK, 7, 3, "stream_chat", payload={"delta": "Hel"}),
    "end": envelope(END, 7, 4, payload={
        "usage": {"prompt_tokens": 10, "completion_tokens": 20}}),
    "cancel": envelope(CANCEL, 7),
    "heartbeat": envelope(HEARTBEAT),
    "scalars": envelope(REQUEST, 2**64 - 1, 2**32, "t" * 255, 2**40, "n" * 40,
                        [None, True, False, 0, -1, -33, -200, -40000,
                         -2**31 - 1, -2**63, 200, 70000, 2**63,
                         Float32(1.5), 2.25, float("nan"), "", "x" * 40,
                         "y" * 300, b"", b"\x00\xff", Ext(1, b"\x07"),
                         Ext(-2, b"abc"), Ext(3, b"\x00" * 16)]),
    "chat_messages": envelope(REQUEST, 9, 0, "chat", 60000, "chat", Wide({
        "model": "offline",
        "messages": Wide([
            Wide({"role": "system", "content": "Be brief."}),
            Wide({"role": "user", "content": "What is an actor?"}),
        ]),
        "temperature": 0.2,
        "stream": True,
    })),
    "gather": envelope(REQUEST, 11, 0, "gather", 0, "gather", {
        "limit": 2,
        "jobs": [{"to": "offload", "type": "call", "payload": {"n": i}}
                 for i in range(5)],
    }),
    "deep": envelope(REQUEST, 12, 0, "deep", payload=nested(30)),
    "wrong_version": envelope(REQUEST, 13, version=2),
}


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(root, "fuzz", "corpus", "envelope")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name + ".msgpack"), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), out))


if __name__ == "__main__":
    main()
