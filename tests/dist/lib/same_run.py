#!/usr/bin/env python3
"""same_run.py A B [--loss-tol X] [--weight-tol Y] - do two training runs agree?

A and B are `lorac train --out` directories. Compares, step by step, every
loss and evaluation in metrics.jsonl (|a - b| <= loss_tol * max(1, |a|)) and
every tensor of adapter_model.safetensors (max |a - b| <= weight_tol * max |a|
over the tensor). Prints the largest differences seen; exits 1 when a
tolerance is exceeded or the runs differ in steps, tensors or shapes.
Standard library only (the test suite needs no third-party Python)."""
import json
import struct
import sys


def metrics(path):
    rows = {}
    for line in open(path):
        r = json.loads(line)
        rows[(r["type"], r["step"])] = r
    return rows


def safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"{path}: tensor {name} is {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        out[name] = (tuple(t["shape"]), struct.unpack(f"<{(b - a) // 4}f", body[a:b]))
    return out


def main():
    args = sys.argv[1:]
    loss_tol, weight_tol = 1e-5, 5e-4
    if "--loss-tol" in args:
        i = args.index("--loss-tol"); loss_tol = float(args[i + 1]); del args[i:i + 2]
    if "--weight-tol" in args:
        i = args.index("--weight-tol"); weight_tol = float(args[i + 1]); del args[i:i + 2]
    a_dir, b_dir = args
    bad = []
    ma, mb = metrics(f"{a_dir}/metrics.jsonl"), metrics(f"{b_dir}/metrics.jsonl")
    if sorted(ma) != sorted(mb):
        bad.append(f"metrics.jsonl: steps differ ({len(ma)} vs {len(mb)} lines)")
    worst_loss = 0.0
    for key in sorted(set(ma) & set(mb)):
        for field in ("loss", "val_loss", "val_acc"):
            if field not in ma[key]:
                continue
            x, y = ma[key][field], mb[key][field]
            d = abs(x - y) / max(1.0, abs(x))
            worst_loss = max(worst_loss, d)
            if d > loss_tol:
                bad.append(f"{key[0]} step {key[1]}: {field} {x} vs {y}")
    ta, tb = safetensors(f"{a_dir}/adapter_model.safetensors"), safetensors(f"{b_dir}/adapter_model.safetensors")
    if sorted(ta) != sorted(tb):
        bad.append("adapter tensors differ in names")
    worst_w = 0.0
    for name in sorted(set(ta) & set(tb)):
        (sa, va), (sb, vb) = ta[name], tb[name]
        if sa != sb:
            bad.append(f"{name}: shape {sa} vs {sb}")
            continue
        scale = max(max(abs(v) for v in va), 1e-30)
        d = max(abs(x - y) for x, y in zip(va, vb)) / scale
        worst_w = max(worst_w, d)
        if d > weight_tol:
            bad.append(f"{name}: max |diff| {d:.3g} of its max |value|")
    print(f"{len(ma)} metric lines, {len(ta)} adapter tensors; largest loss difference {worst_loss:.3g} "
          f"(tolerance {loss_tol:g}), largest weight difference {worst_w:.3g} of the tensor's max (tolerance {weight_tol:g})")
    for line in bad[:10]:
        print("  DIFFERS:", line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
