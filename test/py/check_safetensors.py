#!/usr/bin/env python3
"""Cross-check a safetensors file written by Switchyard against an independent Python reader.

Usage: python3 test/py/check_safetensors.py FILE [FILE ...]

Uses the real `safetensors` package (safetensors.numpy.load_file, the Rust reader) when it is importable,
and always also runs a minimal reader written from the spec here, so the two can be compared. Prints one
line per tensor: name, dtype, shape, and the sum of its elements (float64), then the metadata.
Exit status 1 if the readers disagree or the file breaks a spec rule checked here.
"""
import json
import struct
import sys

import numpy as np

# dtype → (numpy dtype, bytes per element); types numpy lacks are summed as raw bytes.
NP = {
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "I64": ("<i8", 8), "I32": ("<i4", 4),
    "I16": ("<i2", 2), "I8": ("i1", 1), "U64": ("<u8", 8), "U32": ("<u4", 4), "U16": ("<u2", 2),
    "U8": ("u1", 1), "BOOL": ("?", 1), "C64": ("<c8", 8),
}


def spec_read(path):
    """Minimal reader following the spec: u64 LE header size, JSON header, contiguous data buffer."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > 100_000_000 or 8 + n > len(buf):
        raise ValueError(f"bad header length {n}")
    header_bytes = buf[8 : 8 + n]
    if header_bytes[:1] != b"{":
        raise ValueError("header does not start with '{'")
    if n % 8 != 0:
        print(f"note: header length {n} is not a multiple of 8 (allowed, but our writer aligns)")

    def no_dupes(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"duplicate keys in header: {keys}")
        return dict(pairs)

    header = json.loads(header_bytes.decode("utf-8"), object_pairs_hook=no_dupes)
    meta = header.pop("__metadata__", {})
    data = buf[8 + n :]
    entries = sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"]))
    pos = 0
    out = {}
    for name, info in entries:
        b, e = info["data_offsets"]
        if b != pos:
            raise ValueError(f"{name}: offsets [{b}, {e}] leave a hole or overlap (expected begin {pos})")
        pos = e
        dt = info["dtype"]
        numel = int(np.prod(info["shape"], dtype=np.int64)) if info["shape"] else 1
        if dt in NP:
            npdt, size = NP[dt]
            if e - b != numel * size:
                raise ValueError(f"{name}: {e - b} bytes for shape {info['shape']} of {dt}")
            arr = np.frombuffer(data[b:e], dtype=npdt).reshape(info["shape"])
        else:  # BF16, fp8, ...: raw bytes; BF16 widened to float32 for the sum
            raw = np.frombuffer(data[b:e], dtype=np.uint8)
            if dt == "BF16":
                arr = (np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])
            else:
                arr = raw
        out[name] = (dt, list(info["shape"]), arr)
    if pos != len(data):
        raise ValueError(f"data buffer has {len(data)} bytes, tensors cover {pos}")
    return out, meta


def total(arr):
    if arr.dtype.kind == "c":
        return complex(arr.astype(np.complex128).sum())
    return float(arr.astype(np.float64).sum())


def main(paths):
    ok = True
    try:
        from safetensors.numpy import load_file  # the reference (Rust) reader
        from safetensors import safe_open
    except ImportError:
        load_file = None
        print("safetensors package not importable: spec reader only")
    for path in paths:
        print(f"== {path}")
        ours, meta = spec_read(path)
        for name, (dt, shape, arr) in ours.items():
            print(f"{name}\t{dt}\t{shape}\tsum={total(arr)!r}")
        print(f"metadata {json.dumps(meta, sort_keys=True)}")
        if load_file is None:
            continue
        with safe_open(path, framework="numpy") as f:
            ref_meta = f.metadata() or {}
            ref_names = set(f.keys())
            ref = {}
            for name in ref_names:
                try:
                    ref[name] = f.get_tensor(name)
                except Exception as e:  # numpy has no bfloat16 / fp8: compare those by header only
                    print(f"note: reference reader cannot give {name} as numpy ({e}); header compared only")
        if ref_names != set(ours):
            print(f"MISMATCH names: reference {sorted(ref_names)} vs spec reader {sorted(ours)}")
            ok = False
        if ref_meta != meta:
            print(f"MISMATCH metadata: reference {ref_meta} vs spec reader {meta}")
            ok = False
        for name, arr in ref.items():
            dt, shape, mine = ours[name]
            if list(arr.shape) != shape or (dt in NP and not np.array_equal(arr, mine, equal_nan=arr.dtype.kind in "fc")):
                print(f"MISMATCH {name}: reference shape {list(arr.shape)} sum {total(arr)!r}")
                ok = False
        version = __import__("safetensors").__version__
        print(f"reference reader (safetensors {version}): " + ("agrees" if ok else "DISAGREES"))
        # Byte-for-byte: re-serialise with the reference writer. Only comparable when every tensor came
        # back as numpy and the metadata has at most one key (Rust writes a HashMap in random order).
        if len(ref) == len(ours) and len(meta) <= 1:
            from safetensors.numpy import save
            again = save(ref, metadata=meta if meta else None)
            with open(path, "rb") as fh:
                same = fh.read() == again
            print("reference writer gives identical bytes: " + ("yes" if same else "NO"))
            ok = ok and same
        else:
            print("byte-for-byte comparison skipped (BF16/fp8 tensors or several metadata keys)")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))
