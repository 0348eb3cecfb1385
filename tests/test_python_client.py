"""The Python client (examples/python/client.py) against a real node.

    python3 tests/test_python_client.py --node build/tests/py_node

starts py_node (chat with the extractive provider, retrieval in memory,
gather, query and an offload actor with a "sleep" function, all behind one
ipc endpoint) and talks to it through the wire protocol of
docs/protocol.md. Plain unittest; needs pyzmq and msgpack only.
"""

import argparse
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import msgpack
import zmq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "examples", "python"))
import client as af  # noqa: E402

NODE = None  # the py_node executable, from --node

DOCUMENTS = [
    {"id": "honey", "text": "Honey bees make honey from nectar. They store "
     "it in wax combs and fan it with their wings until it thickens.",
     "metadata": {"topic": "honey"}},
    {"id": "dance", "text": "A forager tells her sisters where flowers are "
     "with the waggle dance. The angle of the run gives the direction."},
]

# One sentence of 5000 words: the extractive provider quotes it whole, four
# words a chunk, so its stream runs well past one credit window.
LONG_SENTENCE = ("Bees carry " +
                 " ".join("grain%d" % i for i in range(5000)) + " home.")


def chat_messages(context, question):
    return [{"role": "system", "content": context},
            {"role": "user", "content": question}]


class Node:
    """A py_node process serving ipc://DIR/node.sock."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="af-py-")
        self.proc = subprocess.Popen([NODE, self.dir], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError("py_node did not start: %r" % line)
        self.endpoint = line.split()[1]

    def stop(self):
        running = self.proc.poll() is None
        try:
            self.proc.stdin.close()  # py_node stops when its stdin closes
        except BrokenPipeError:
            pass
        if running:
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.node = Node()
        cls.client = af.Client(cls.node.endpoint)
        reply = cls.client.request("retrieval", "insert",
                                   {"documents": DOCUMENTS}, timeout=10)
        assert reply == {"documents": 2, "chunks": 2}, reply

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.node.stop()
        # A node that stopped cleanly exits 0 (a sanitizer build exits
        # otherwise on a leak).
        assert cls.node.proc.returncode == 0, cls.node.proc.returncode

    def test_insert_and_retrieve(self):
        c = self.client
        reply = c.request("retrieval", "insert",
                          {"id": "propolis", "text": "Propolis is a resin "
                           "bees collect from tree buds."}, timeout=10)
        self.assertEqual(reply, {"documents": 1, "chunks": 1})
        reply = c.request("retrieval", "retrieve",
                          {"query": "Where do bees store honey?", "top_k": 1},
                          timeout=10)
        self.assertEqual(len(reply["nodes"]), 1)
        node = reply["nodes"][0]
        self.assertEqual(node["doc_id"], "honey")
        self.assertEqual(node["id"], "honey#0")
        self.assertEqual(node["position"], 0)
        self.assertIsInstance(node["score"], float)
        self.assertEqual(node["text"], DOCUMENTS[0]["text"])
        self.assertEqual(node["metadata"], {"topic": "honey"})
        stats = c.request("retrieval", "stats", None, timeout=10)
        self.assertGreaterEqual(stats["documents"], 3)

    def test_stream_chat_matches_chat(self):
        c = self.client
        messages = chat_messages(DOCUMENTS[0]["text"] + " " +
                                 DOCUMENTS[1]["text"],
                                 "How do bees tell where flowers are?")
        whole = c.request("chat", "chat", {"messages": messages}, timeout=10)
        stream = c.stream("chat", "stream_chat", {"messages": messages},
                          timeout=10)
        chunks, end = af.collect(stream)
        self.assertGreater(len(chunks), 1)
        self.assertEqual("".join(ch["delta"] for ch in chunks),
                         whole["content"])
        self.assertIn("waggle dance", whole["content"])
        self.assertEqual(end["finish_reason"], "stop")
        self.assertEqual(end["model"], "extractive")
        self.assertEqual(end["usage"], whole["usage"])

    def test_long_stream_needs_credit(self):
        # More chunks than one window: the producer goes on only because
        # the client sends credit as it reads.
        c = self.client
        messages = chat_messages(LONG_SENTENCE, "What do bees carry?")
        whole = c.request("chat", "chat", {"messages": messages}, timeout=30)
        chunks, end = af.collect(c.stream("chat", "stream_chat",
                                          {"messages": messages}, timeout=60))
        self.assertGreater(len(chunks), af.STREAM_WINDOW)
        self.assertEqual("".join(ch["delta"] for ch in chunks),
                         whole["content"])
        self.assertEqual(end["finish_reason"], "stop")
        # A small window works the same, with credit every two chunks.
        chunks, _ = af.collect(c.stream("chat", "stream_chat",
                                        {"messages": messages}, timeout=60,
                                        window=8))
        self.assertEqual("".join(ch["delta"] for ch in chunks),
                         whole["content"])

    def test_window_without_credit_stalls(self):
        # The protocol at the frame level, from docs/protocol.md alone: a
        # stream request grants a window of 8 (its seq); without credit the
        # producer stops after 8 chunks; a credit lets it go on.
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.node.endpoint)
        try:
            def send(kind, id_, seq=0, type_=None, ttl=0, to=None, pl=None):
                sock.send(msgpack.packb([1, kind, id_, seq, type_, ttl, to,
                                         pl]))

            def recv(timeout_ms):
                while sock.poll(timeout_ms):
                    env = msgpack.unpackb(sock.recv(), raw=False)
                    if env[1] != af.HEARTBEAT:
                        return env
                return None

            messages = chat_messages(LONG_SENTENCE, "What do bees carry?")
            send(af.REQUEST, 77, 8, "stream_chat", 30000, "chat",
                 {"messages": messages})
            for seq in range(1, 9):
                env = recv(5000)
                self.assertEqual(env[:4], [1, af.CHUNK, 77, seq])
                self.assertEqual(env[4:7], [None, 0, None])
                self.assertIsInstance(env[7]["delta"], str)
            self.assertIsNone(recv(500), "a chunk beyond the window")
            send(af.CREDIT, 77, 8)
            for seq in range(9, 17):
                self.assertEqual(recv(5000)[:4], [1, af.CHUNK, 77, seq])
            self.assertIsNone(recv(500), "a chunk beyond the window")
            send(af.CANCEL, 77)
            self.assertIsNone(recv(500), "a chunk after the cancel")
            # The same connection goes on serving.
            send(af.REQUEST, 78, 0, "retrieve", 5000, "retrieval",
                 {"query": "honey", "top_k": 1})
            env = recv(5000)
            self.assertEqual(env[:7], [1, af.REPLY, 78, 0, None, 0, None])
            self.assertEqual(env[7]["nodes"][0]["doc_id"], "honey")
        finally:
            sock.close()

    def test_errors(self):
        c = self.client
        with self.assertRaises(af.ActorError) as e:
            c.request("retrieval", "retrieve", {"query": ""}, timeout=5)
        self.assertEqual(e.exception.code, af.AF_EINVAL)
        self.assertEqual(e.exception.name, "AF_EINVAL")
        self.assertIn("query", e.exception.text)
        with self.assertRaises(af.ActorError) as e:
            c.request("retrieval", "retrieve", "not a map", timeout=5)
        self.assertEqual(e.exception.code, af.AF_EINVAL)
        with self.assertRaises(af.ActorError) as e:
            list(c.stream("chat", "stream_chat", {"messages": []}, timeout=5))
        self.assertEqual(e.exception.code, af.AF_EINVAL)
        with self.assertRaises(af.ActorError) as e:
            c.request("nobody", "retrieve", {"query": "x"}, timeout=5)
        self.assertEqual(e.exception.code, af.AF_ENOTFOUND)
        with self.assertRaises(af.ActorError) as e:
            c.request("gather", "scatter", {}, timeout=5)
        self.assertEqual(e.exception.code, af.AF_ENOTSUP)
        with self.assertRaises(af.ActorError) as e:
            c.request(None, "retrieve", {"query": "x"}, timeout=5)
        self.assertEqual(e.exception.code, af.AF_EADDR)
        # Errors leave the connection as it was.
        self.assertTrue(c.request("retrieval", "retrieve",
                                  {"query": "honey"}, timeout=5)["nodes"])

    def test_cancel_stream_then_serve(self):
        c = self.client
        messages = chat_messages(LONG_SENTENCE, "What do bees carry?")
        stream = c.stream("chat", "stream_chat", {"messages": messages},
                          timeout=60)
        for _, chunk in zip(range(5), stream):
            self.assertIn("delta", chunk)
        stream.close()  # sends the cancel
        self.assertEqual(list(stream), [])
        self.assertEqual(c._queues, {})  # nothing left open
        # A generator dropped unfinished is cancelled too.
        stream = c.stream("chat", "stream_chat", {"messages": messages},
                          timeout=60)
        next(stream)
        del stream
        self.assertEqual(c._queues, {})
        reply = c.request("retrieval", "retrieve", {"query": "waggle"},
                          timeout=5)
        self.assertEqual(reply["nodes"][0]["doc_id"], "dance")
        chunks, end = af.collect(c.stream(
            "chat", "stream_chat",
            {"messages": chat_messages("Bees dance.", "Who dances?")},
            timeout=10))
        self.assertEqual("".join(ch["delta"] for ch in chunks), "Bees dance.")

    def test_timeout(self):
        c = self.client
        start = time.monotonic()
        with self.assertRaises(af.ActorError) as e:
            c.request("offload", "call", {"fn": "sleep", "args": {"ms": 3000}},
                      timeout=0.3)
        self.assertEqual(e.exception.code, af.AF_ETIMEDOUT)
        self.assertEqual(e.exception.name, "AF_ETIMEDOUT")
        self.assertLess(time.monotonic() - start, 2.0)
        # The next answer on the connection is the next request's, not the
        # late one of the request given up on.
        self.assertEqual(c.request("offload", "call",
                                   {"fn": "sleep", "args": {"ms": 10}},
                                   timeout=10), "slept")
        # A stream's timeout bounds the whole stream.
        with self.assertRaises(af.ActorError) as e:
            list(c.stream("offload", "call",
                          {"fn": "sleep", "args": {"ms": 3000}}, timeout=0.3))
        self.assertEqual(e.exception.code, af.AF_ETIMEDOUT)

    def test_query_and_stream_query(self):
        c = self.client
        question = {"query": "How do bees make honey?", "top_k": 2}
        whole = c.request("query", "query", question, timeout=30)
        self.assertIn("nectar", whole["response"])
        self.assertTrue(whole["source_nodes"])
        stream = c.stream("query", "stream_query", question, timeout=30)
        chunks, end = af.collect(stream)
        self.assertEqual("".join(ch["delta"] for ch in chunks),
                         whole["response"])
        self.assertEqual([n["id"] for n in end["source_nodes"]],
                         [n["id"] for n in whole["source_nodes"]])

    def test_gather(self):
        c = self.client
        items = [{"to": "retrieval", "type": "retrieve",
                  "payload": {"query": q, "top_k": 1}}
                 for q in ("honey", "waggle")]
        items.append({"to": "retrieval", "type": "retrieve",
                      "payload": {"query": ""}})
        reply = c.request("gather", "gather", {"items": items}, timeout=10)
        slots = reply["results"]
        self.assertEqual([s["ok"] for s in slots], [True, True, False])
        self.assertEqual(slots[0]["value"]["nodes"][0]["doc_id"], "honey")
        self.assertEqual(slots[1]["value"]["nodes"][0]["doc_id"], "dance")
        self.assertEqual(slots[2]["error"]["code"], af.AF_EINVAL)
        chunks, end = af.collect(c.stream(
            "gather", "gather", {"items": items, "as_completed": True},
            timeout=10))
        self.assertEqual(sorted(ch["index"] for ch in chunks), [0, 1, 2])
        self.assertEqual(end, {"completed": 3, "failed": 1})

    def test_plain_reply_to_stream_request(self):
        # retrieve answers a stream request with a plain reply: a stream of
        # no chunks whose end is the reply.
        stream = self.client.stream("retrieval", "retrieve",
                                    {"query": "honey"}, timeout=5)
        self.assertEqual(list(stream), [])
        self.assertTrue(stream.end["nodes"])


class PeerDownTest(unittest.TestCase):
    def test_node_dies(self):
        node = Node()
        try:
            with af.Client(node.endpoint) as c:
                self.assertEqual(c.request("offload", "call",
                                           {"fn": "sleep",
                                            "args": {"ms": 0}}, timeout=5),
                                 "slept")
                node.proc.kill()
                start = time.monotonic()
                with self.assertRaises(af.ActorError) as e:
                    c.request("offload", "call",
                              {"fn": "sleep", "args": {"ms": 5000}},
                              timeout=20)
                self.assertEqual(e.exception.code, af.AF_EPEERDOWN)
                self.assertLess(time.monotonic() - start, 10)
        finally:
            node.proc.wait()
            node.stop()


def main():
    global NODE
    parser = argparse.ArgumentParser()
    parser.add_argument("--node", required=True, help="the py_node program")
    args, rest = parser.parse_known_args()
    NODE = os.path.abspath(args.node)
    unittest.main(argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
