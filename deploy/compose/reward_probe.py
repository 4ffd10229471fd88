#!/usr/bin/env python3
"""Sends code tasks to a running reward server over its real gRPC stream (Reward.Score)
and checks the verdicts: a correct program scores, and hostile programs are contained
(they score 0, the server answers every completion and stays up). deploy/compose/check.sh
runs it against each reward container of the compose cluster.

    reward_probe.py --addr HOST:PORT --proto-dir proto [--json]

Needs python3-grpcio and python3-protobuf (Debian) and protoc: the messages are built
from a descriptor set protoc writes from the project's own .proto files, so no generated
Python code is kept anywhere."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf import message_factory

# What each hostile program tries; all must score 0 and none may stop the stream.
HOSTILE = {
    "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
    "memory_hog": "x = []\nwhile True:\n    x.append(' ' * 10**7)\n",
    "sleep_forever": "import time\ntime.sleep(3600)\n",
    "network": "import socket\ns = socket.create_connection(('1.1.1.1', 53), timeout=2)\nprint(3)\n",
    "escape_write": "open('/etc/grpo/run.yaml', 'a').write('pwned')\nprint(3)\n",
    "read_server_env": "print(open('/proc/1/environ').read())\nprint(3)\n",
    "output_flood": "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n",
}
CORRECT = "a, b = map(int, input().split())\nprint(a + b)\n"
TESTS = [("1 2\n", "3\n"), ("20 22\n", "42\n")]


def messages(proto_dir):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "grpo.pb")
        subprocess.run(["protoc", "-I", proto_dir, "--include_imports", f"--descriptor_set_out={out}",
                        "grpo/v1/reward.proto"], check=True)
        fds = descriptor_pb2.FileDescriptorSet()
        with open(out, "rb") as f:
            fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)
    get = getattr(message_factory, "GetMessageClass", None)
    if get is None:  # protobuf < 4.21
        factory = message_factory.MessageFactory(pool)
        get = lambda d: factory.GetPrototype(d)  # noqa: E731
    return (get(pool.FindMessageTypeByName("grpo.v1.RolloutGroup")),
            get(pool.FindMessageTypeByName("grpo.v1.GroupScores")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--proto-dir", required=True)
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    RolloutGroup, GroupScores = messages(a.proto_dir)
    names = ["correct"] + list(HOSTILE)
    programs = [CORRECT] + list(HOSTILE.values())
    g = RolloutGroup()
    g.item.lease_id = 1
    g.item.prompt_id = "compose-probe"
    g.item.prompt = "Read two integers and print their sum."
    g.item.task = "code"
    g.item.language = "python"
    for i, o in TESTS:
        t = g.item.tests.add()
        t.input, t.output = i, o
    for p in programs:
        c = g.completions.add()
        c.text = f"<think> sum </think> <answer>\n{p}</answer>"
    channel = grpc.insecure_channel(a.addr)
    score = channel.stream_stream("/grpo.v1.Reward/Score", request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=GroupScores.FromString)
    replies = list(score(iter([g]), timeout=a.timeout))
    failures = []
    if len(replies) != 1:
        failures.append(f"{len(replies)} replies to one group")
    got = {}
    if replies:
        r = replies[0]
        if r.error:
            failures.append(f"group error: {r.error}")
        if len(r.scores) != len(programs):
            failures.append(f"{len(r.scores)} scores for {len(programs)} completions")
        for name, s in zip(names, r.scores):
            acc = s.components.get("accuracy", 0.0)
            got[name] = {"accuracy": acc, "error": s.error}
            if name == "correct" and acc != 1.0:
                failures.append(f"the correct program scored accuracy {acc} ({s.error})")
            if name != "correct" and acc != 0.0:
                failures.append(f"hostile {name} scored accuracy {acc}")
    print(json.dumps({"addr": a.addr, "scores": got, "failures": failures}))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
