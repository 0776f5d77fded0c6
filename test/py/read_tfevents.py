#!/usr/bin/env python3
"""Independent reader of a Switchyard run's TensorBoard event files, checked against its metrics.jsonl.

Usage: python3 test/py/read_tfevents.py RUN_DIR

Compiles TensorBoard's own protos (test/fixtures/tensorboard, copied unmodified) with protoc, decodes every
record of RUN_DIR/tensorboard/events.out.tfevents.* (in name order, as TensorBoard reads them) with the
generated classes, and checks:
  - the framing: u64 length, masked CRC32C of the length, data, masked CRC32C of the data, for every record;
  - each file opens with file_version "brain.Event:2", then a SessionLog START;
  - after applying TensorBoard's restart rule (a START after the first purges every point with step >= its
    step), every tag's steps strictly increase, and the tags, steps and values equal what metrics.jsonl
    implies (scalars as float32, per-layer metrics and across-layer percentiles recomputed here with numpy,
    one expert-load histogram per layer).
Prints a JSON summary on stdout; exits 1 with a message on the first mismatch.
"""
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.join(HERE, "..", "fixtures", "tensorboard")


def fail(msg):
    print("read_tfevents: " + msg, file=sys.stderr)
    sys.exit(1)


def crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


if crc32c(b"123456789") != 0xE3069283:
    fail("the reader's own CRC32C fails its check value")


def load_protos():
    out = tempfile.mkdtemp(prefix="tfevents-pb-")
    files = sorted(glob.glob(os.path.join(PROTOS, "tensorboard", "compat", "proto", "*.proto")))
    rel = [os.path.relpath(f, PROTOS) for f in files]
    subprocess.run(["protoc", "-I", PROTOS, "--python_out", out] + rel, check=True)
    sys.path.insert(0, out)
    from tensorboard.compat.proto import event_pb2  # noqa: E402 (generated above)
    return event_pb2


def read_records(path):
    buf = open(path, "rb").read()
    off, out = 0, []
    while off < len(buf):
        if len(buf) - off < 12:
            fail(f"{path}: {len(buf) - off} stray bytes at offset {off}")
        header = buf[off:off + 8]
        (n,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", buf[off + 8:off + 12])
        if hcrc != masked(header):
            fail(f"{path}: length CRC mismatch at offset {off}")
        data = buf[off + 12:off + 12 + n]
        if len(data) != n or len(buf) < off + 16 + n:
            fail(f"{path}: record at offset {off} is truncated")
        (dcrc,) = struct.unpack("<I", buf[off + 12 + n:off + 16 + n])
        if dcrc != masked(data):
            fail(f"{path}: data CRC mismatch at offset {off}")
        out.append(data)
        off += 16 + n
    return out


def f32(v):
    return float(np.float32(v))


def layer_tag(l, L):
    return "layer_" + str(l).zfill(max(2, len(str(L - 1))))


def expected(rec):
    """tag -> ('scalar', value, exact) | ('histo', load) implied by one metrics.jsonl record."""
    e = {}

    def add(tag, v, exact=True):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v):
            e[tag] = ("scalar", v, exact)

    add("train/loss", rec.get("loss"))
    add("train/lr", rec.get("lr"))
    add("train/grad_norm", rec.get("grad_norm"))
    add("train/tokens_per_s", rec.get("tokens_per_s"))
    add("val/loss", rec.get("val_loss"))
    add("val/ppl", rec.get("val_ppl"))
    for k, v in rec["aux"].items():
        add("aux/" + k, v)
    for k in ("load_cv", "max_load_share", "maxvio", "router_entropy", "dropped_fraction"):
        add("moe/" + k, rec.get(k))
    loads = [np.asarray(x, dtype=np.float64) for x in rec["expert_load"]]
    L = len(loads)

    def cv(x):
        return float(x.std() / x.mean()) if x.sum() > 0 else 0.0

    def vio(x):
        return float((x.max() - x.mean()) / x.mean()) if x.sum() > 0 else 0.0

    def share(x):
        return float(x.max() / x.sum()) if x.sum() > 0 else 0.0

    if L:
        cvs, vios = np.array([cv(x) for x in loads]), np.array([vio(x) for x in loads])
        for name, xs in (("load_cv", cvs), ("maxvio", vios)):
            for q in (50, 90, 95):
                add(f"moe/{name}/p{q}", float(np.percentile(xs, q)), False)
            add(f"moe/{name}/max", float(xs.max()), False)
    for l, x in enumerate(loads):
        t = "moe/" + layer_tag(l, L)
        add(t + "/load_cv", cv(x), False)
        add(t + "/max_load_share", share(x), False)
        add(t + "/maxvio", vio(x), False)
        e[t + "/expert_load"] = ("histo", x)
    return e


def main():
    if len(sys.argv) != 2:
        fail("usage: read_tfevents.py RUN_DIR")
    run = sys.argv[1]
    event_pb2 = load_protos()
    files = sorted(glob.glob(os.path.join(run, "tensorboard", "*tfevents*")))
    if not files:
        fail(f"no event files in {run}/tensorboard")
    points = {}  # tag -> list of (step, value)
    seen_start, n_events, n_records, purged, raw_pairs = False, 0, 0, 0, 0
    starts = []
    for path in files:
        recs = read_records(path)
        n_records += len(recs)
        events = []
        for data in recs:
            ev = event_pb2.Event()
            ev.ParseFromString(data)
            if ev.SerializeToString() != data:
                fail(f"{path}: an event does not re-serialize to the same bytes (unknown or misnumbered fields?)")
            events.append(ev)
        if len(events) < 2 or events[0].WhichOneof("what") != "file_version" or events[0].file_version != "brain.Event:2":
            fail(f"{path}: the first event must carry file_version brain.Event:2")
        if events[1].WhichOneof("what") != "session_log" or events[1].session_log.status != event_pb2.SessionLog.START:
            fail(f"{path}: the second event must be a SessionLog START")
        for ev in events:
            n_events += 1
            what = ev.WhichOneof("what")
            if what == "session_log" and ev.session_log.status == event_pb2.SessionLog.START:
                starts.append(ev.step)
                if seen_start:  # TensorBoard's restart rule: drop every point at step >= this START's step
                    for tag in points:
                        keep = [p for p in points[tag] if p[0] < ev.step]
                        purged += len(points[tag]) - len(keep)
                        points[tag] = keep
                seen_start = True
            elif what == "summary":
                for v in ev.summary.value:
                    kind = v.WhichOneof("value")
                    raw_pairs += 1
                    if kind == "simple_value":
                        points.setdefault(v.tag, []).append((ev.step, ("scalar", v.simple_value)))
                    elif kind == "histo":
                        h = v.histo
                        points.setdefault(v.tag, []).append((ev.step, ("histo", h)))
                    else:
                        fail(f"{path}: tag {v.tag} at step {ev.step} has value kind {kind}")
    for tag, ps in points.items():
        steps = [p[0] for p in ps]
        if any(b <= a for a, b in zip(steps, steps[1:])):
            fail(f"tag {tag}: steps do not strictly increase after restarts are applied (zigzag): {steps[:20]}")

    metrics = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
    want = {}
    for rec in metrics:
        for tag, e in expected(rec).items():
            want.setdefault(tag, []).append((rec["step"], e))
    if set(want) != set(points):
        fail(f"tags differ: only in metrics.jsonl {sorted(set(want) - set(points))[:10]}, only in events {sorted(set(points) - set(want))[:10]}")
    compared = 0
    for tag, ws in want.items():
        got = points[tag]
        if [s for s, _ in ws] != [s for s, _ in got]:
            fail(f"tag {tag}: steps {[s for s, _ in got][:20]} != metrics.jsonl steps {[s for s, _ in ws][:20]}")
        for (step, w), (_, g) in zip(ws, got):
            compared += 1
            if w[0] == "scalar":
                v = g[1]
                ok = v == f32(w[1]) if w[2] else abs(v - w[1]) <= 1e-6 * max(1.0, abs(w[1]))
                if not ok:
                    fail(f"tag {tag} step {step}: event {v!r} != metrics.jsonl {w[1]!r} (float32 {f32(w[1])!r})")
            else:
                h, load = g[1], w[1]
                ids = np.arange(len(load))
                if list(h.bucket) != list(load) or list(h.bucket_limit) != [i + 0.5 for i in ids]:
                    fail(f"tag {tag} step {step}: histogram buckets {list(h.bucket)} != expert_load {list(load)}")
                if (h.num, h.sum, h.sum_squares) != (load.sum(), (ids * load).sum(), (ids * ids * load).sum()):
                    fail(f"tag {tag} step {step}: histogram num/sum/sum_squares do not match the load")
    print(json.dumps({
        "files": [os.path.basename(f) for f in files], "records": n_records, "events": n_events, "starts": starts,
        "tags": len(points), "values_compared": compared, "purged": purged, "raw_values": raw_pairs,
        "steps": [r["step"] for r in metrics],
    }))


main()
