#!/usr/bin/env python3
"""Cross-framework check of `capsnet export`: the PyTorch reference (capsnet_torch.py) loads the
exported weights and recomputes capsnet's outputs, losses and gradients on capsnet's batch.

    capsnet export --checkpoint RUN --out model.safetensors --reference-batch 16
    python check_export.py model.safetensors [--json]

reads model.safetensors (weights), model.batch.safetensors (images, labels and capsnet's
lengths, reconstruction, margin_loss, reconstruction_loss, loss of one training-mode step) and
model.grads.safetensors (capsnet's gradients of that step, named like the weights). The network
is built from the file's own metadata (`capsnet.network`), so any CapsNet with dynamic routing
or Efficient-CapsNet with self-attention routing that the reference implements can be checked;
other options are refused with a message naming them.

The reference runs in float64 by default (capsnet's float32 weights and batch, widened): the
comparison then measures capsnet's own float32 error, not the reference's. With --dtype float32
PyTorch's own float32 error adds in; its CPU batch-norm backward in float32 is off by up to ~1%
on Efficient-CapsNet's first stem layers (docs/interop.md), hence the looser gradient tolerance.
Each quantity is compared by its largest absolute difference divided by the largest absolute
value on either side (scale-relative), against 1e-4 (float64 reference) or 1e-4 for outputs and
1e-2 for gradients (float32 reference).
Prints a table (or JSON with --json); exit status 0 when everything agrees, 1 when not, 2 for
unusable input. Needs torch (and nothing else: safetensors files are parsed here).
"""

import argparse
import importlib.util
import json
import struct
import sys
from pathlib import Path

TOLERANCES = {"float64": (1e-4, 1e-4), "float32": (1e-4, 1e-2)}  # (outputs and losses, gradients)


def fail(message):
    sys.stderr.write(f"error: {message}\n")
    sys.exit(2)


def load_reference():
    path = Path(__file__).with_name("capsnet_torch.py")
    spec = importlib.util.spec_from_file_location("capsnet_torch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_safetensors(path, torch):
    """(tensors by name, metadata) of a safetensors file."""
    dtypes = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "F16": torch.float16, "BF16": torch.bfloat16}
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        fail(f"cannot read {path}: {e}")
    if len(data) < 8:
        fail(f"{path}: not a safetensors file (too short)")
    (n,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + n])
    except ValueError as e:
        fail(f"{path}: not a safetensors file ({e})")
    meta = header.pop("__metadata__", {}) or {}
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] not in dtypes:
            fail(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        raw = bytearray(body[start:end])
        t = torch.frombuffer(raw, dtype=dtypes[info["dtype"]]) if raw else torch.empty(0, dtype=dtypes[info["dtype"]])
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors, meta


def configure(ref, arch, net, loss):
    """Sets the reference's module constants from capsnet's network and loss settings."""
    unsupported = []
    if arch == "capsnet":
        routing = net["routing"]
        if routing.get("algorithm", "dynamic") != "dynamic":
            unsupported.append(f"routing.algorithm = {routing['algorithm']!r}")
        for key in ("leaky", "stop_gradient"):
            if routing.get(key):
                unsupported.append(f"routing.{key} = true")
        if net.get("digit_bias"):
            unsupported.append("digit_bias = true")
        if net.get("squash", "sabour") != "sabour":
            unsupported.append(f"squash = {net['squash']!r}")
        ref.CONV1_CHANNELS = net["conv1_channels"]
        ref.CONV1_KERNEL = net["conv1_kernel"]
        ref.PRIMARY_TYPES = net["primary_types"]
        ref.PRIMARY_DIM = net["primary_dim"]
        ref.PRIMARY_KERNEL = net["primary_kernel"]
        ref.PRIMARY_STRIDE = net["primary_stride"]
        ref.ROUTING_ITERATIONS = routing["iterations"]
    elif arch == "efficient-capsnet":
        if net["routing"].get("algorithm") != "self-attention":
            unsupported.append(f"routing.algorithm = {net['routing'].get('algorithm')!r}")
        if not net["routing"].get("priors", True):
            unsupported.append("routing.priors = false")
        if net.get("squash", "efficient") != "efficient":
            unsupported.append(f"squash = {net['squash']!r}")
        ref.EFF_STEM = tuple((s["channels"], s["kernel"], s["stride"]) for s in net["stem"])
        ref.EFF_BN_MOMENTUM = net["batch_norm_momentum"]
        ref.EFF_BN_EPS = net["batch_norm_eps"]
        ref.EFF_PRIMARY_KERNEL = net["primary_kernel"]
        ref.EFF_PRIMARY_DIM = net["primary_dim"]
    else:
        fail(f"the reference has no {arch!r} network (capsnet and efficient-capsnet only)")
    if not net["decoder"]["enabled"]:
        unsupported.append("decoder.enabled = false")
    if unsupported:
        fail("the PyTorch reference does not implement " + ", ".join(unsupported))
    ref.INPUT = (net["input_channels"], net["input_height"], net["input_width"])
    ref.CLASSES = net["classes"]
    ref.CLASS_DIM = net["class_dim"]
    ref.SQUASH_EPS = net["squash_eps"]
    ref.DECODER_HIDDEN = tuple(net["decoder"]["hidden"])
    ref.M_PLUS, ref.M_MINUS, ref.LAMBDA, ref.RECON_WEIGHT = (
        loss["m_plus"],
        loss["m_minus"],
        loss["lambda"],
        loss["recon_weight"],
    )


def compare(name, ours, theirs, tolerance):
    ours = ours.detach().double().flatten()
    theirs = theirs.detach().double().flatten()
    if ours.shape != theirs.shape:
        return {"name": name, "values": int(theirs.numel()), "scaled_diff": float("inf"), "tolerance": tolerance, "ok": False,
                "note": f"shape {list(ours.shape)} vs capsnet {list(theirs.shape)}"}
    # Scaled by the larger side, so that a zero on one side against values on the other fails.
    scale = max(theirs.abs().max().item(), ours.abs().max().item()) if theirs.numel() else 0.0
    diff = (ours - theirs).abs().max().item() if theirs.numel() else 0.0
    scaled = diff / scale if scale > 0 else diff
    finite = bool(ours.isfinite().all() and theirs.isfinite().all())
    return {"name": name, "values": int(theirs.numel()), "max_abs_diff": diff, "scaled_diff": scaled,
            "tolerance": tolerance, "ok": finite and scaled <= tolerance}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", type=Path)
    p.add_argument("--batch", type=Path, help="default: <stem>.batch.safetensors beside the weights")
    p.add_argument("--grads", type=Path, help="default: <stem>.grads.safetensors beside the weights")
    p.add_argument("--dtype", choices=sorted(TOLERANCES), default="float64", help="the reference's precision (default float64)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        fail(f"PyTorch is not installed for {sys.executable}")
    torch.manual_seed(0)
    stem = args.weights.with_suffix("")
    batch_path = args.batch or stem.with_name(stem.name + ".batch.safetensors")
    grads_path = args.grads or stem.with_name(stem.name + ".grads.safetensors")
    weights, meta = read_safetensors(args.weights, torch)
    batch, batch_meta = read_safetensors(batch_path, torch)
    grads, _ = read_safetensors(grads_path, torch)
    arch = meta.get("capsnet.arch")
    if arch is None or "capsnet.network" not in meta:
        fail(f"{args.weights}: no capsnet metadata (not written by `capsnet export`)")
    if "capsnet.loss" not in batch_meta:
        fail(f"{batch_path}: no capsnet.loss metadata (not written by `capsnet export --reference-batch`)")
    ref = load_reference()
    configure(ref, arch, json.loads(meta["capsnet.network"]), json.loads(batch_meta["capsnet.loss"]))
    def step(dtype):
        """PyTorch's outputs and losses and gradients of capsnet's step, in `dtype`."""
        model = (ref.CapsNet() if arch == "capsnet" else ref.EfficientCapsNet()).to(dtype)
        cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()}
        missing, unexpected = model.load_state_dict(cast, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            fail(f"{args.weights} does not fit the reference: missing {missing}, unexpected {unexpected}")
        model.train()  # batch norm on batch statistics, as capsnet's training step
        images, labels = batch["images"].to(dtype), batch["labels"]
        _, lengths, reconstruction = model(images, labels)
        t = F.one_hot(labels, ref.CLASSES).to(lengths.dtype)
        margin = (t * F.relu(ref.M_PLUS - lengths) ** 2 + ref.LAMBDA * (1 - t) * F.relu(lengths - ref.M_MINUS) ** 2).sum(1).mean()
        sse = ((reconstruction - images.flatten(1)) ** 2).sum(1).mean()
        loss = margin + ref.RECON_WEIGHT * sse
        loss.backward()
        out = {"lengths": lengths, "reconstruction": reconstruction, "margin_loss": margin.reshape(1),
               "reconstruction_loss": sse.reshape(1), "loss": loss.reshape(1)}
        for name, param in model.named_parameters():
            if name not in grads:
                fail(f"{grads_path} has no gradient for {name}")
            out[f"grad {name}"] = param.grad
        return out

    forward_tolerance, gradient_tolerance = TOLERANCES[args.dtype]
    reference = step(getattr(torch, args.dtype))
    # PyTorch's own float32 error against float64, beside capsnet's (information, not checked).
    own_float32 = step(torch.float32) if args.dtype == "float64" else None
    rows = []
    for name, value in reference.items():
        theirs = grads[name[5:]] if name.startswith("grad ") else batch[name]
        tolerance = gradient_tolerance if name.startswith("grad ") else forward_tolerance
        row = compare(name, value, theirs, tolerance)
        if own_float32 is not None:
            row["torch_float32_scaled_diff"] = compare(name, own_float32[name], value, tolerance)["scaled_diff"]
        rows.append(row)
    ok = all(r["ok"] for r in rows)
    report = {"arch": arch, "batch": int(batch["images"].shape[0]), "torch": torch.__version__, "reference_dtype": args.dtype,
              "quantities": rows, "ok": ok}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{arch}, batch {report['batch']}, torch {torch.__version__} in {args.dtype}: capsnet (float32) vs PyTorch, scale-relative max difference")
        if own_float32 is not None:
            print("  (last column: PyTorch's own float32 result vs its float64 one, for scale)")
        for r in rows:
            own = f"  torch f32: {r['torch_float32_scaled_diff']:.2e}" if own_float32 is not None else ""
            print(f"  {r['name']:<28} {r['values']:>9} values  {r['scaled_diff']:>10.2e}  (tolerance {r['tolerance']:.0e})  {'ok' if r['ok'] else 'MISMATCH'}{own}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
