#!/usr/bin/env python3
"""A Python client for actorflow, with only pyzmq and msgpack.

It speaks the wire protocol of docs/protocol.md: one ZeroMQ DEALER
connected to an endpoint where actorflow exports actors, one msgpack
envelope per frame, requests answered on the same connection.

    client = Client("ipc:///run/af/node.sock")   # af_system_export's endpoint
    hits = client.request("retrieval", "retrieve", {"query": "honey"})
    for chunk in client.stream("chat", "stream_chat", {"messages": [...]}):
        print(chunk["delta"], end="")

Errors from an actor (or the runtime: timeouts, a node that went away)
are raised as ActorError, carrying the af_err code, its name and the text.

A Client is not thread-safe (like the C af_client): use one per thread. Its
streams may be read interleaved with each other and with requests, since
answers are sorted by correlation id.

Run it as a program to see it work against a node hosting the retrieval and
chat actors (tests/py_node does):

    python3 examples/python/client.py ipc:///tmp/af/node.sock
"""

import collections
import collections.abc
import itertools
import math
import sys
import time

import msgpack
import zmq
from zmq.utils.monitor import recv_monitor_message

PROTOCOL_VERSION = 1

# Message kinds (af_kind in include/actorflow/actor.h).
TELL = 1
REQUEST = 2
REPLY = 3
ERROR = 4
CHUNK = 5
END = 6
CANCEL = 7
HEARTBEAT = 8
BATCH = 9
CREDIT = 10

# The credit window the C runtime grants (AF_STREAM_WINDOW).
STREAM_WINDOW = 1024
# The largest message a node accepts unless configured otherwise.
DEFAULT_MAX_MESSAGE = 16 << 20

# af_err (include/actorflow/err.h): codes travel on the wire as integers,
# and their values never change.
AF_OK = 0
AF_ENOMEM = 1
AF_EINVAL = 2
AF_ENOTFOUND = 3
AF_EEXIST = 4
AF_ETIMEDOUT = 5
AF_EAGAIN = 6
AF_ECANCELED = 7
AF_EPEERDOWN = 8
AF_ESTOPPED = 9
AF_EPROTO = 10
AF_EMSGSIZE = 11
AF_EVERSION = 12
AF_ENOTSUP = 13
AF_ENOREPLY = 14
AF_ETYPE = 15
AF_ERANGE = 16
AF_ESYS = 17
AF_EADDR = 18
AF_EREMOTE = 19
AF_EOF = 20
AF_EHTTP = 21
AF_EIO = 22
AF_EAUTH = 23
AF_EUSER = 1000  # the first code free for applications

ERROR_NAMES = {code: name for name, code in list(globals().items())
               if name.startswith("AF_E") and name != "AF_EUSER"}
ERROR_NAMES[AF_OK] = "AF_OK"


class ActorError(Exception):
    """An error answer, or a request that ended without one.

    code is the af_err value (or an application's own code, from 1000),
    name its symbolic name ("AF_EINVAL"; "AF_EUSER+n" or "" for codes the
    runtime does not define), text the description.
    """

    def __init__(self, code, text):
        self.code = code
        if code in ERROR_NAMES:
            self.name = ERROR_NAMES[code]
        elif code >= AF_EUSER:
            self.name = "AF_EUSER+%d" % (code - AF_EUSER)
        else:
            self.name = ""
        self.text = text
        super().__init__("%s (%d): %s" % (self.name or "error", code, text))


def _encode(kind, id_, seq=0, type_=None, ttl_ms=0, to=None, payload=None):
    """One envelope: [version, kind, id, seq, type, ttl_ms, to, payload]."""
    for field, value in (("type", type_), ("actor name", to)):
        if value is not None and len(value.encode("utf-8")) > 255:
            raise ValueError("%s longer than 255 bytes" % field)
    return msgpack.packb(
        [PROTOCOL_VERSION, kind, id_, seq, type_, ttl_ms, to, payload],
        use_bin_type=True,
    )


def _error_of(payload):
    """The ActorError an error message's payload {"code", "message"} says."""
    code = payload.get("code") if isinstance(payload, dict) else None
    if not isinstance(code, int) or isinstance(code, bool) or code == 0:
        # The C runtime reads a missing or zero code the same way.
        return ActorError(AF_EREMOTE, "malformed error message")
    text = payload.get("message")
    if not isinstance(text, str):
        text = ERROR_NAMES.get(code, "unknown error")
    return ActorError(code, text)


_PEER_DOWN = object()  # queued for every open request when the node goes


class Client:
    """A connection to one actorflow endpoint.

    endpoint is where actors are exported: "ipc:///path" or
    "tcp://host:port", without "#name". The actor is named per call:
    the name of an actor behind a system endpoint (af_system_export), or
    None for an endpoint that exports one actor alone (af_export).
    """

    def __init__(self, endpoint, max_message=DEFAULT_MAX_MESSAGE):
        if "#" in endpoint:
            raise ValueError("give the endpoint without '#name'; name the "
                             "actor in each call")
        self.endpoint = endpoint
        self.max_message = max_message
        self._ids = itertools.count(1)
        # Answers received and not yet read, by request id; a request
        # has an entry while it is open, so anything else is late.
        self._queues = {}
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.DEALER)
        # The options the C runtime gives its own DEALERs: ZMTP
        # heartbeats notice a silent peer in 3 s, reconnects are quick,
        # and a frame far over the limit is refused before it is read.
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        self._sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3000)
        self._sock.setsockopt(zmq.HEARTBEAT_TTL, 3000)
        self._sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self._sock.setsockopt(zmq.MAXMSGSIZE, 4 * max_message)
        # A disconnect ends every open request with AF_EPEERDOWN, as in C.
        self._monitor = self._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._sock.connect(endpoint)
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def close(self):
        """Closes the connection; open requests are abandoned."""
        if self._sock is None:
            return
        for id_ in list(self._queues):
            self._send_control(CANCEL, id_, 0)
        self._queues.clear()
        self._sock.disable_monitor()
        self._monitor.close(linger=0)
        self._sock.close(linger=0)
        self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- the calls ------------------------------------------------------

    def tell(self, actor, type_, payload=None, timeout=5.0):
        """Sends a one-way message (no answer, no error)."""
        self._send(_encode(TELL, 0, 0, type_, 0, actor, payload),
                   time.monotonic() + timeout)

    def request(self, actor, type_, payload=None, timeout=30.0):
        """Sends a request and returns the reply's payload.

        timeout (seconds, > 0) is the request's deadline; it travels with
        the request so the actor stops working on it then. Raises
        ActorError: the actor's error, or AF_ETIMEDOUT / AF_EPEERDOWN.
        """
        id_, deadline = self._start(actor, type_, payload, timeout, window=0)
        try:
            kind, _, payload = self._next(id_, deadline)
        except BaseException:
            self._abandon(id_)
            raise
        del self._queues[id_]
        if kind != REPLY:
            # A plain request is granted no window: chunks break the rules.
            self._send_control(CANCEL, id_, 0)
            raise ActorError(AF_EPROTO, "a stream answered a plain request")
        return payload

    def stream(self, actor, type_, payload=None, timeout=60.0,
               window=STREAM_WINDOW):
        """Sends a stream request; returns a generator of chunk payloads.

        The request goes at once. Iterating yields each chunk's payload;
        the end's payload (e.g. usage) is the generator's return value
        (StopIteration.value, or `end = yield from ...`) and stays in its
        .end attribute. A target that answers with a plain reply gives no
        chunk and the reply as the end. Credit is sent as chunks are taken,
        so the producer is never more than window chunks ahead. Closing
        the generator before the end (close(), a break out of a with
        block, garbage collection) cancels the stream. timeout bounds the
        whole stream. Errors raise ActorError from the iteration.
        """
        if not 0 < window < 1 << 64:
            raise ValueError("window must be at least 1")
        id_, deadline = self._start(actor, type_, payload, timeout, window)
        return Stream(self, id_, deadline, window)

    # ---- the machinery --------------------------------------------------

    def _start(self, actor, type_, payload, timeout, window):
        if self._sock is None:
            raise ValueError("the client is closed")
        if not timeout or timeout <= 0:
            raise ValueError("timeout must be > 0 seconds")
        id_ = next(self._ids)
        ttl_ms = max(1, math.ceil(timeout * 1000))
        deadline = time.monotonic() + timeout
        frame = _encode(REQUEST, id_, window, type_, ttl_ms, actor, payload)
        if len(frame) > self.max_message:
            raise ActorError(AF_EMSGSIZE, "request of %d bytes exceeds the "
                             "limit of %d" % (len(frame), self.max_message))
        self._queues[id_] = collections.deque()
        try:
            self._send(frame, deadline)
        except BaseException:
            del self._queues[id_]
            raise
        return id_, deadline

    def _send(self, frame, deadline):
        """Sends one frame, waiting for room in a full mailbox until the
        deadline (then AF_ETIMEDOUT, and nothing was sent)."""
        left = max(0, int((deadline - time.monotonic()) * 1000))
        self._sock.setsockopt(zmq.SNDTIMEO, left)
        try:
            self._sock.send(frame)
        except zmq.Again:
            raise ActorError(AF_ETIMEDOUT, "mailbox full until the deadline")

    def _send_control(self, kind, id_, seq):
        """A cancel or credit: best effort, never waits."""
        if self._sock is None:
            return
        try:
            self._sock.send(_encode(kind, id_, seq), zmq.NOBLOCK)
        except zmq.ZMQError:
            pass

    def _abandon(self, id_):
        """Gives up on an open request: the actor is told to stop, and
        whatever still comes for it is dropped."""
        if self._queues.pop(id_, None) is not None:
            self._send_control(CANCEL, id_, 0)

    def _next(self, id_, deadline):
        """The next answer (kind, seq, payload) for request id_; raises the
        error it carries, AF_ETIMEDOUT or AF_EPEERDOWN."""
        queue = self._queues[id_]
        while not queue:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ActorError(AF_ETIMEDOUT, "deadline passed")
            self._pump(left)
        message = queue.popleft()
        if message is _PEER_DOWN:
            raise ActorError(AF_EPEERDOWN, "the node went away")
        kind, seq, payload = message
        if kind == ERROR:
            del self._queues[id_]
            raise _error_of(payload)
        return message

    def _pump(self, seconds):
        """Waits up to seconds for traffic and sorts what came by id."""
        ready = dict(self._poller.poll(max(1, math.ceil(seconds * 1000))))
        # Answers first: those a node sent before it went still count.
        if self._sock in ready:
            while True:
                try:
                    frames = self._sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if len(frames) == 1:  # answers are single frames
                    self._dispatch(frames[0])
        if self._monitor in ready:
            event = recv_monitor_message(self._monitor)
            if event["event"] == zmq.EVENT_DISCONNECTED:
                for queue in self._queues.values():
                    queue.append(_PEER_DOWN)

    def _dispatch(self, frame):
        try:
            env = msgpack.unpackb(frame, raw=False, strict_map_key=False)
        except Exception:
            return  # malformed: dropped, as the C runtime drops it
        if (not isinstance(env, list) or len(env) != 8
                or env[0] != PROTOCOL_VERSION):
            return
        _, kind, id_, seq, _, _, _, payload = env
        if kind == BATCH and isinstance(payload, list):
            # Never sent to a remote requester today, but legal.
            for inner in payload:
                self._dispatch(msgpack.packb(inner, use_bin_type=True))
            return
        queue = self._queues.get(id_)
        # Heartbeats probe that this requester is alive: nothing to do.
        # Answers to requests already given up on are dropped.
        if queue is not None and kind in (REPLY, ERROR, CHUNK, END):
            queue.append((kind, seq, payload))


class Stream(collections.abc.Generator):
    """The generator Client.stream returns (see there)."""

    def __init__(self, client, id_, deadline, window):
        self._client = client
        self._id = id_
        self._deadline = deadline
        self._window = window
        self._received = 0  # chunks received, the last seq seen
        self._credited = 0  # the last credit sent
        self._done = False
        self.end = None

    def send(self, value):
        if self._done:
            raise StopIteration(self.end)
        client = self._client
        try:
            kind, seq, payload = client._next(self._id, self._deadline)
        except BaseException:
            self._done = True
            client._abandon(self._id)
            raise
        if kind in (END, REPLY):
            self._done = True
            del client._queues[self._id]
            if kind == END and seq != self._received:
                raise ActorError(AF_EPROTO, "the end counts %d chunks, %d "
                                 "came" % (seq, self._received))
            self.end = payload
            raise StopIteration(payload)
        # A chunk. They come numbered 1, 2, 3, ... and never more than the
        # window beyond the last credit.
        if seq != self._received + 1 or seq - self._credited > self._window:
            self._done = True
            client._abandon(self._id)
            raise ActorError(AF_EPROTO, "chunk %d out of order" % seq)
        self._received = seq
        # The chunk is taken as it is handed over; credit (the count of
        # chunks taken, cumulative) goes back every quarter window.
        if self._received - self._credited >= max(1, self._window // 4):
            client._send_control(CREDIT, self._id, self._received)
            self._credited = self._received
        return payload

    def throw(self, typ=None, val=None, tb=None):
        self.close()
        if val is None:
            val = typ() if isinstance(typ, type) else typ
        raise val

    def close(self):
        """Cancels the stream if it is still going."""
        if not self._done:
            self._done = True
            self._client._abandon(self._id)

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def collect(stream):
    """Reads a whole stream: (list of chunk payloads, end payload)."""
    chunks = list(stream)
    return chunks, stream.end


# ---- the demonstration ---------------------------------------------------

DOCUMENTS = [
    {"id": "honey", "text": "Honey bees make honey from nectar. They store "
     "it in wax combs and fan it with their wings until it thickens."},
    {"id": "dance", "text": "A forager tells her sisters where flowers are "
     "with the waggle dance. The angle of the run gives the direction and "
     "its length the distance."},
]


def main(argv):
    if len(argv) != 2:
        print("usage: client.py ENDPOINT   (e.g. ipc:///tmp/af/node.sock)",
              file=sys.stderr)
        return 2
    with Client(argv[1]) as client:
        reply = client.request("retrieval", "insert",
                               {"documents": DOCUMENTS}, timeout=10)
        print("insert: %d documents, %d chunks"
              % (reply["documents"], reply["chunks"]))

        question = "How do bees tell where the flowers are?"
        reply = client.request("retrieval", "retrieve",
                               {"query": question, "top_k": 2}, timeout=10)
        for node in reply["nodes"]:
            print("retrieve: %-8s %.3g  %s"
                  % (node["doc_id"], node["score"], node["text"]))

        context = "\n\n".join(node["text"] for node in reply["nodes"])
        messages = [
            {"role": "system", "content": "Context:\n" + context},
            {"role": "user", "content": question},
        ]
        print("stream_chat: ", end="", flush=True)
        stream = client.stream("chat", "stream_chat",
                               {"messages": messages}, timeout=30)
        for chunk in stream:
            print(chunk["delta"], end="", flush=True)
        print()
        print("end:", stream.end)

        try:
            client.request("retrieval", "retrieve", {"query": ""}, timeout=5)
        except ActorError as e:
            print("an error, as expected: %s %d %s" % (e.name, e.code, e.text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
