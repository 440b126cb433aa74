#!/usr/bin/env python3
"""PyTorch references of the paper's MNIST CapsNet and of Efficient-CapsNet, for throughput comparisons.

Each network is the same network, loss and optimiser as its `crates/capsnet-model` counterpart,
written so that every tensor has the shape and layout of the Rust code. `--network` picks one.

`--network capsnet` (default): `experiments/mnist.toml` (Sabour et al. 2017: r = 3 routing
iterations, reconstruction decoder, Adam lr 1e-3, eps 1e-8), 8,215,568 parameters:

    input [B,1,28,28]
    Conv1 256@9x9 s1, ReLU                         -> [B,256,20,20]
    PrimaryCaps conv 256->256 9x9 s2               -> [B,256,6,6]
      reshape [B,32,8,6,6], permute [B,32,6,6,8]   -> [B,1152,8], squash
    DigitCaps W [1152,8,160] (no bias)
      votes = u^T [1152,B,8] @ W                   -> [1152,B,160] -> [1152,B,10,16]
      permute                                      -> [B,10,1152,16]
    routing, 3 iterations, no stop-gradient        -> v [B,10,16]
    lengths sqrt(sum v^2 + 1e-8)                   -> [B,10]
    decoder on (v * onehot) [B,160]: 512 ReLU, 1024 ReLU, 784 sigmoid
    loss = margin (sum over classes, batch mean) + 0.0005 * per-image SSE (batch mean)

`--network efficient-capsnet`: `experiments/efficient_capsnet.toml` (Mazzia et al. 2021, as in
EscVM/Efficient-CapsNet's MNIST model; Adam lr 5e-4, eps 1e-7), 161,824 trainable parameters
without the decoder, 1,573,168 with it:

    input [B,1,28,28]
    conv 32@5x5 s1 -> ReLU -> BN                   -> [B,32,24,24]
    conv 64@3x3 s1 -> ReLU -> BN                   -> [B,64,22,22]
    conv 64@3x3 s1 -> ReLU -> BN                   -> [B,64,20,20]
    conv 128@3x3 s2 -> ReLU -> BN                  -> [B,128,9,9]
      (valid padding, bias; BN momentum 0.01 in torch's convention = Keras' 0.99, eps 1e-3)
    PrimaryCaps depthwise conv 9x9 (groups 128)    -> [B,128,1,1] -> view [B,16,8], Efficient squash
      v = (1 - exp(-n)) s / n, n = sqrt(|s|^2 + 1e-8) (the official code adds 1e-20 to exp(n)
      and to |s| instead)
    FCCaps W [16,8,160] (no bias), priors b [10,16] (zero init)
      votes = u^T [16,B,8] @ W                     -> [16,B,160] -> [16,B,10,16]
      permute                                      -> [B,10,16,16]
    self-attention routing (one pass):
      a = votes @ (sum over children of votes)^T / sqrt(16)   -> [B,10,16]
      c = softmax(a over the 10 parents) + b, s = c @ votes   -> [B,10,16], Efficient squash
    lengths, decoder and loss as CapsNet's

Batch norm uses batch statistics in the training steps (train mode) and running statistics in
the inference steps (eval mode). Initialisation: torch's defaults for convolutions, batch norm and
linear layers; W ~ N(0, 0.01) (CapsNet) or N(0, sqrt(2/1280) = 0.0395) (Efficient-CapsNet, whose
official he_normal is truncated at 2 sigma; a plain normal is fine for a speed reference).

Usage:
    capsnet_torch.py bench [--network capsnet|efficient-capsnet]
                           [--batch-size 32] [--steps 10] [--warmup 2] [--threads N]
                           [--device cpu|cuda] [--dtype fp32|tf32|bf16]
                           [--adam fused|foreach|for-loop] [--channels-last]
        one JSON object on stdout, the shape of `capsnet bench`'s output; its `machine` names
        the CPU kernels used (torch's CPU capability, oneDNN's ISA) and the variables that
        restrict them (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA; `bench-compare --isa avx2`)
    capsnet_torch.py info [--network capsnet|efficient-capsnet] [--json]
        layer table (output shape per image, parameters), like `capsnet info`
"""

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised by `cargo xtask bench-compare`
    sys.stderr.write(
        "error: PyTorch is not installed for this interpreter ("
        + sys.executable
        + ").\n  python3 -m venv /work/venv-torch && "
        "/work/venv-torch/bin/pip install torch numpy\n"
        "  then pass --python /work/venv-torch/bin/python (see scripts/reference/README.md)\n"
    )
    sys.exit(3)

# Paper MNIST configuration (crates/capsnet-model `CapsNetConfig::paper_mnist`).
INPUT = (1, 28, 28)
CONV1_CHANNELS = 256
CONV1_KERNEL = 9
PRIMARY_TYPES = 32
PRIMARY_DIM = 8
PRIMARY_KERNEL = 9
PRIMARY_STRIDE = 2
CLASSES = 10
CLASS_DIM = 16
ROUTING_ITERATIONS = 3
SQUASH_EPS = 1e-8
WEIGHT_INIT_STD = 0.01
DECODER_HIDDEN = (512, 1024)
M_PLUS, M_MINUS, LAMBDA, RECON_WEIGHT = 0.9, 0.1, 0.5, 0.0005
LR, ADAM_EPS = 1e-3, 1e-8

EXPECTED_PARAMS = 8_215_568

# Efficient-CapsNet MNIST configuration (crates/capsnet-model `EfficientCapsNetConfig::paper_mnist`;
# classes, class capsule dimension, decoder and loss constants as above).
EFF_STEM = ((32, 5, 1), (64, 3, 1), (64, 3, 1), (128, 3, 2))  # (channels, kernel, stride)
EFF_BN_MOMENTUM, EFF_BN_EPS = 0.01, 1e-3  # torch's momentum convention (Keras' 0.99)
EFF_PRIMARY_KERNEL = 9
EFF_PRIMARY_DIM = 8
EFF_WEIGHT_INIT_STD = (2.0 / 1280.0) ** 0.5  # he_normal's std for W (not truncated here)
EFF_LR, EFF_ADAM_EPS = 5e-4, 1e-7

EFF_EXPECTED_ENCODER_PARAMS = 161_824  # trainable, without the decoder (the paper's count)
EFF_EXPECTED_PARAMS = 1_573_168


def squash(s, dim):
    """v = s * |s|^2 / ((1 + |s|^2) * sqrt(|s|^2 + eps)), finite at s = 0."""
    sq = (s * s).sum(dim=dim, keepdim=True)
    return s * (sq / ((sq + 1.0) * torch.sqrt(sq + SQUASH_EPS)))


def efficient_squash(s, dim):
    """Efficient-CapsNet's squash: v = (1 - exp(-n)) * s / n with n = sqrt(|s|^2 + eps).

    eps = 1e-8 under the root, as in the Rust code; the official code instead adds 1e-20 to
    exp(n) and to |s|.
    """
    n = torch.sqrt((s * s).sum(dim=dim, keepdim=True) + SQUASH_EPS)
    return s * ((1.0 - torch.exp(-n)) / n)


def make_decoder(width, out_width):
    """The reconstruction decoder's linear layers: width -> 512 -> 1024 -> out_width."""
    layers = []
    for hidden in DECODER_HIDDEN:
        layers.append(nn.Linear(width, hidden))
        width = hidden
    layers.append(nn.Linear(width, out_width))
    return nn.ModuleList(layers)


def run_decoder(decoder, v, labels):
    """Decodes the capsules `v` [B,10,16] masked by `labels` (one-hot), ReLU ... sigmoid."""
    mask = F.one_hot(labels, CLASSES).to(v.dtype).unsqueeze(2)
    x = (v * mask).flatten(1)
    last = len(decoder) - 1
    for i, layer in enumerate(decoder):
        x = layer(x)
        x = torch.sigmoid(x) if i == last else F.relu(x)
    return x


def capsule_lengths(v):
    """sqrt(sum v^2 + eps) over the capsule dimension: [B,10,16] -> [B,10]."""
    return torch.sqrt((v * v).sum(dim=2) + SQUASH_EPS)


class CapsNet(nn.Module):
    def __init__(self):
        super().__init__()
        c, h, w = INPUT
        self.conv1 = nn.Conv2d(c, CONV1_CHANNELS, CONV1_KERNEL)
        self.primary = nn.Conv2d(
            CONV1_CHANNELS, PRIMARY_TYPES * PRIMARY_DIM, PRIMARY_KERNEL, stride=PRIMARY_STRIDE
        )
        h1, w1 = h - CONV1_KERNEL + 1, w - CONV1_KERNEL + 1
        self.grid = ((h1 - PRIMARY_KERNEL) // PRIMARY_STRIDE + 1, (w1 - PRIMARY_KERNEL) // PRIMARY_STRIDE + 1)
        self.children_n = PRIMARY_TYPES * self.grid[0] * self.grid[1]
        # W stored as [children, child_dim, parents * parent_dim]: all votes are one bmm.
        self.weight = nn.Parameter(
            torch.randn(self.children_n, PRIMARY_DIM, CLASSES * CLASS_DIM) * WEIGHT_INIT_STD
        )
        self.decoder = make_decoder(CLASSES * CLASS_DIM, c * h * w)

    def primary_caps(self, features):
        out = self.primary(features)  # [B, 256, 6, 6]
        b, _, h, w = out.shape
        caps = (
            out.reshape(b, PRIMARY_TYPES, PRIMARY_DIM, h, w)
            .permute(0, 1, 3, 4, 2)
            .reshape(b, PRIMARY_TYPES * h * w, PRIMARY_DIM)
        )
        return squash(caps, 2)  # [B, 1152, 8]

    def votes(self, u):
        b, n, _ = u.shape
        votes = torch.bmm(u.transpose(0, 1), self.weight)  # [1152, B, 160]
        # [1152, B, 10, 16] -> [B, 10, 1152, 16]; made contiguous once, reused by every iteration.
        return votes.view(n, b, CLASSES, CLASS_DIM).permute(1, 2, 0, 3).contiguous()

    @staticmethod
    def route(votes):
        b, parents, children, _ = votes.shape
        logits = torch.zeros(b, parents, children, device=votes.device, dtype=votes.dtype)
        for iteration in range(ROUTING_ITERATIONS):
            c = torch.softmax(logits, dim=1)  # over the parents
            s = (c.unsqueeze(2) @ votes).squeeze(2)  # [B,10,1,1152] @ [B,10,1152,16] -> [B,10,16]
            v = squash(s, 2)
            if iteration == ROUTING_ITERATIONS - 1:
                return v
            logits = logits + (votes @ v.unsqueeze(3)).squeeze(3)  # [B,10,1152]

    def decode(self, v, labels):
        return run_decoder(self.decoder, v, labels)

    def forward(self, images, targets=None):
        """Returns (v [B,10,16], lengths [B,10], reconstruction [B,784]).

        The decoder is masked by `targets` when given (training), else by the longest capsule.
        """
        features = F.relu(self.conv1(images))
        u = self.primary_caps(features)
        v = self.route(self.votes(u))
        lengths = capsule_lengths(v)
        mask_labels = targets if targets is not None else lengths.argmax(dim=1)
        return v, lengths, self.decode(v, mask_labels)


def self_attention_route(votes, priors):
    """Efficient-CapsNet's self-attention routing (one pass) of votes [B,J parents,I children,D].

    Returns (v [B,J,D], couplings [B,J,I]); the couplings are softmax over the parents of the
    scaled agreement, plus the priors [J,I], so each child's couplings sum to 1 + sum_j b_ji.
    """
    dim = votes.shape[3]
    total = votes.sum(dim=2, keepdim=True)  # [B,J,1,D]
    # Agreement of each vote with the sum of all votes for its parent: [B,J,I,D] @ [B,J,D,1].
    agreement = (votes @ total.transpose(2, 3)).squeeze(3) / dim**0.5  # [B,J,I]
    couplings = torch.softmax(agreement, dim=1) + priors  # over the parents, priors after
    s = (couplings.unsqueeze(2) @ votes).squeeze(2)  # [B,J,1,I] @ [B,J,I,D] -> [B,J,D]
    return efficient_squash(s, 2), couplings


class EfficientCapsNet(nn.Module):
    """Efficient-CapsNet's MNIST network (Mazzia et al. 2021), laid out as the Rust code."""

    def __init__(self):
        super().__init__()
        channels, h, w = INPUT
        convs, norms = [], []
        for out_channels, kernel, stride in EFF_STEM:
            convs.append(nn.Conv2d(channels, out_channels, kernel, stride=stride))
            norms.append(nn.BatchNorm2d(out_channels, eps=EFF_BN_EPS, momentum=EFF_BN_MOMENTUM))
            channels = out_channels
            h, w = (h - kernel) // stride + 1, (w - kernel) // stride + 1
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(norms)
        # Depthwise: output channel c sees only input channel c (depth multiplier 1), with bias.
        self.primary = nn.Conv2d(channels, channels, EFF_PRIMARY_KERNEL, groups=channels)
        grid = (h - EFF_PRIMARY_KERNEL + 1) * (w - EFF_PRIMARY_KERNEL + 1)
        self.children_n = channels * grid // EFF_PRIMARY_DIM  # 16
        # W stored as [children, child_dim, parents * parent_dim]: all votes are one bmm.
        self.weight = nn.Parameter(
            torch.randn(self.children_n, EFF_PRIMARY_DIM, CLASSES * CLASS_DIM) * EFF_WEIGHT_INIT_STD
        )
        self.priors = nn.Parameter(torch.zeros(CLASSES, self.children_n))  # b [parents, children]
        self.decoder = make_decoder(CLASSES * CLASS_DIM, INPUT[0] * INPUT[1] * INPUT[2])

    def stem(self, images):
        """Every stem stage's output (conv -> ReLU -> BN), first to last."""
        outputs, x = [], images
        for conv, norm in zip(self.convs, self.norms):
            x = norm(F.relu(conv(x)))
            outputs.append(x)
        return outputs

    def primary_caps(self, features):
        out = self.primary(features)  # [B, 128, 1, 1]
        # Capsule n = channels [8n, 8n + 8) (H = W = 1).
        caps = out.reshape(out.shape[0], self.children_n, EFF_PRIMARY_DIM)
        return efficient_squash(caps, 2)  # [B, 16, 8]

    def votes(self, u):
        b, n, _ = u.shape
        votes = torch.bmm(u.transpose(0, 1), self.weight)  # [16, B, 160]
        # [16, B, 10, 16] -> [B, 10 (parents), 16 (children), 16 (dim)].
        return votes.view(n, b, CLASSES, CLASS_DIM).permute(1, 2, 0, 3).contiguous()

    def route(self, votes):
        return self_attention_route(votes, self.priors)[0]

    def decode(self, v, labels):
        return run_decoder(self.decoder, v, labels)

    def forward(self, images, targets=None):
        """Returns (v [B,10,16], lengths [B,10], reconstruction [B,784]), as CapsNet.forward."""
        u = self.primary_caps(self.stem(images)[-1])
        v = self.route(self.votes(u))
        lengths = capsule_lengths(v)
        mask_labels = targets if targets is not None else lengths.argmax(dim=1)
        return v, lengths, self.decode(v, mask_labels)


def capsnet_loss(lengths, reconstruction, images, labels):
    t = F.one_hot(labels, CLASSES).to(lengths.dtype)
    present = F.relu(M_PLUS - lengths) ** 2
    absent = F.relu(lengths - M_MINUS) ** 2
    margin = (t * present + LAMBDA * (1.0 - t) * absent).sum(dim=1).mean()
    sse = ((reconstruction - images.flatten(1)) ** 2).sum(dim=1).mean()
    return margin + RECON_WEIGHT * sse


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def layer_table(model):
    """Rows (name, output shape per image, params) from a real forward pass, like `capsnet info`."""
    if isinstance(model, EfficientCapsNet):
        return efficient_layer_table(model)
    x = torch.zeros(1, *INPUT)
    with torch.no_grad():
        f = F.relu(model.conv1(x))
        u = model.primary_caps(f)
        v = model.route(model.votes(u))
        d = [v.flatten(1)]
        for i, layer in enumerate(model.decoder):
            d.append(layer(d[-1]))
    rows = [
        ("input", list(x.shape[1:]), 0),
        (f"conv1 {CONV1_KERNEL}x{CONV1_KERNEL} s1 relu", list(f.shape[1:]), num_params(model.conv1)),
        (
            f"primarycaps {PRIMARY_KERNEL}x{PRIMARY_KERNEL} s{PRIMARY_STRIDE} squash",
            list(u.shape[1:]),
            num_params(model.primary),
        ),
        (f"digitcaps r={ROUTING_ITERATIONS}", list(v.shape[1:]), model.weight.numel()),
    ]
    for i, layer in enumerate(model.decoder):
        rows.append((f"decoder fc{i + 1}", list(d[i + 1].shape[1:]), num_params(layer)))
    return rows


def efficient_layer_table(model):
    """`layer_table` of Efficient-CapsNet (a conv row counts its batch norm's gamma and beta)."""
    x = torch.zeros(1, *INPUT)
    was_training = model.training
    model.eval()  # running statistics: a batch of one image
    with torch.no_grad():
        stem = model.stem(x)
        u = model.primary_caps(stem[-1])
        v = model.route(model.votes(u))
        d = [v.flatten(1)]
        for layer in model.decoder:
            d.append(layer(d[-1]))
    model.train(was_training)
    rows = [("input", list(x.shape[1:]), 0)]
    for i, ((_, kernel, stride), conv, norm, out) in enumerate(
        zip(EFF_STEM, model.convs, model.norms, stem)
    ):
        rows.append(
            (
                f"conv{i + 1} {kernel}x{kernel} s{stride} relu bn",
                list(out.shape[1:]),
                num_params(conv) + num_params(norm),
            )
        )
    rows.append(
        (
            f"primarycaps depthwise {EFF_PRIMARY_KERNEL}x{EFF_PRIMARY_KERNEL} squash",
            list(u.shape[1:]),
            num_params(model.primary),
        )
    )
    rows.append(("fccaps self-attention", list(v.shape[1:]), model.weight.numel() + model.priors.numel()))
    for i, layer in enumerate(model.decoder):
        rows.append((f"decoder fc{i + 1}", list(d[i + 1].shape[1:]), num_params(layer)))
    return rows


# --network: the model, its asserted parameter counts (all; without the decoder, or None) and
# its Adam learning rate and epsilon.
NETWORKS = {
    "capsnet": (CapsNet, EXPECTED_PARAMS, None, LR, ADAM_EPS),
    "efficient-capsnet": (
        EfficientCapsNet,
        EFF_EXPECTED_PARAMS,
        EFF_EXPECTED_ENCODER_PARAMS,
        EFF_LR,
        EFF_ADAM_EPS,
    ),
}


def build_model(network):
    """The model of `network` (a NETWORKS key), its parameter counts asserted; (model, params)."""
    cls, expected, expected_encoder, _, _ = NETWORKS[network]
    model = cls()
    params = num_params(model)
    assert params == expected, f"{network}: parameter count {params:,} != {expected:,}"
    if expected_encoder is not None:
        encoder = params - num_params(model.decoder)
        assert encoder == expected_encoder, (
            f"{network}: parameters without the decoder {encoder:,} != {expected_encoder:,}"
        )
    return model, params


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/sys/kernel/hostname") as f:
            hostname = f.read().strip()
    except OSError:
        hostname = socket.gethostname()
    try:
        threads = len(os.sched_getaffinity(0))
    except AttributeError:
        threads = os.cpu_count() or 1
    system = {"Linux": "linux", "Darwin": "macos", "Windows": "windows"}.get(platform.system(), platform.system().lower())
    try:
        capability = torch.backends.cpu.get_cpu_capability()  # the ATen kernels dispatched to, e.g. AVX2, AVX512
    except AttributeError:
        capability = "unknown"
    return {"hostname": hostname, "cpu": cpu, "threads": threads, "os": f"{system} {platform.machine()}",
            "torch_cpu_capability": capability, "onednn_isa": onednn_isa(),
            "isa_environment": {name: os.environ.get(name) for name in ISA_VARIABLES}}


# The variables that restrict the CPU kernels (`cargo xtask bench-compare --isa avx2` sets both):
# ATen's own kernels, and oneDNN's (convolutions).
ISA_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")

# A convolution small enough to be instant, large enough that torch hands it to oneDNN.
ONEDNN_PROBE = "import torch; torch.nn.functional.conv2d(torch.ones(2, 8, 16, 16), torch.ones(8, 8, 3, 3))"

# `onednn_verbose,v1,info,cpu,isa:Intel AVX2` (older oneDNN: no `v1`, or `dnnl_verbose`). The ISA
# name may hold commas ("Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions").
ONEDNN_ISA_LINE = re.compile(r"^(?:onednn|dnnl)_verbose,(?:v\d+,)?info,cpu,isa:(.+)$")


def parse_onednn_isa(text):
    """The ISA named by oneDNN's verbose `info,cpu,isa:` line in `text`; None without one."""
    for line in text.splitlines():
        match = ONEDNN_ISA_LINE.match(line.strip())
        if match:
            return match.group(1).strip()
    return None


def onednn_isa():
    """The ISA oneDNN dispatches to (e.g. "Intel AVX2"): a tiny convolution in a child Python
    with ONEDNN_VERBOSE=1, which inherits this environment (so ONEDNN_MAX_CPU_ISA applies). None
    when it cannot be read (no oneDNN in this torch, the child failed, no such line)."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", DNNL_VERBOSE="1")
    try:
        child = subprocess.run(
            [sys.executable, "-c", ONEDNN_PROBE], env=env, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if child.returncode != 0:
        return None
    return parse_onednn_isa(child.stdout + "\n" + child.stderr)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(args):
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch.cuda.is_available() is False")
    device = torch.device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    tf32 = args.dtype == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    autocast_dtype = torch.bfloat16 if args.dtype == "bf16" else None

    def autocast():
        return torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)

    torch.manual_seed(0)
    model, params = build_model(args.network)
    model = model.to(device)
    _, _, _, lr, adam_eps = NETWORKS[args.network]
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    print(f"pytorch reference: {args.network}, {params:,} parameters, Adam {args.adam}", file=sys.stderr)
    # "fused" (one kernel over all parameters) is the fastest stock Adam on both CPU and CUDA;
    # "for-loop" is torch's CPU default.
    adam_options = {"fused": {"fused": True}, "foreach": {"foreach": True}, "for-loop": {"foreach": False}}
    optim = torch.optim.Adam(model.parameters(), lr=lr, eps=adam_eps, **adam_options[args.adam])

    b = args.batch_size
    images = torch.rand(b, *INPUT, device=device).contiguous(memory_format=memory_format)
    labels = (torch.arange(b, device=device) % CLASSES).long()

    # Training: forward + loss + backward + Adam step + loss read back (batch norm: batch statistics).
    model.train()
    times = []
    for i in range(args.warmup + args.steps):
        synchronize(device)
        start = time.perf_counter()
        with autocast():
            _, lengths, recon = model(images, labels)
            loss = capsnet_loss(lengths.float(), recon.float(), images, labels)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        loss.item()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    train_total = sum(times)

    # Inference: no autodiff, decoder masked by the longest capsule, lengths read back. The loss
    # is computed too (not read), as `capsnet bench` does through the same step function. Eval
    # mode: batch norm uses its running statistics.
    model.eval()
    images = torch.rand(b, *INPUT, device=device).contiguous(memory_format=memory_format)
    infer_total = 0.0
    with torch.no_grad():
        for i in range(args.warmup + args.steps):
            synchronize(device)
            start = time.perf_counter()
            with autocast():
                _, lengths, recon = model(images)
                capsnet_loss(lengths.float(), recon.float(), images, labels)
            lengths.float().cpu().tolist()
            if i >= args.warmup:
                infer_total += time.perf_counter() - start

    images_timed = b * args.steps
    result = {
        "name": "pytorch-reference",
        "arch": args.network,
        "network": args.network,
        "backend": f"pytorch-{device.type}",
        "batch_size": b,
        "steps": args.steps,
        "train_images_per_sec": images_timed / train_total,
        # sorted[len / 2], as `capsnet bench` computes it (the upper median for even counts).
        "train_ms_per_step_median": sorted(times)[len(times) // 2] * 1e3,
        "inference_images_per_sec": images_timed / infer_total,
        "machine": machine_info(),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "adam": args.adam,
        "channels_last": args.channels_last,
        "params": params,
        # TF32 for float32 products and convolutions (only `--dtype tf32` allows it).
        "tf32": tf32,
    }
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
        result["cuda_version"] = torch.version.cuda
    print(json.dumps(result, indent=2))


def info(args):
    model, total = build_model(args.network)
    rows = layer_table(model)
    assert sum(r[2] for r in rows) == total, "layer table out of sync with the model"
    if args.json:
        layers = [{"name": n, "output": o, "params": p} for n, o, p in rows]
        print(
            json.dumps(
                {"name": "pytorch-reference", "network": args.network, "layers": layers, "params": total},
                indent=2,
            )
        )
        return
    width = max(28, max(len(r[0]) for r in rows))
    print(f"{'layer':<{width}} {'output (per image)':>22} {'params':>12}")
    for name, output, p in rows:
        print(f"{name:<{width}} {str(output):>22} {p:>12,}")
    print(f"{'total':<{width}} {'':>22} {total:>12,}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    network = argparse.ArgumentParser(add_help=False)
    network.add_argument(
        "--network",
        choices=list(NETWORKS),
        default="capsnet",
        help="capsnet (experiments/mnist.toml, default) or efficient-capsnet "
        "(experiments/efficient_capsnet.toml)",
    )
    b = sub.add_parser(
        "bench", parents=[network], help="training and inference images/s on random inputs (JSON)"
    )
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--steps", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--dtype", choices=["fp32", "tf32", "bf16"], default="fp32")
    b.add_argument("--adam", choices=["fused", "foreach", "for-loop"], default="fused")
    b.add_argument("--channels-last", action="store_true", help="NHWC activations and conv weights")
    i = sub.add_parser("info", parents=[network], help="layer shapes and parameter counts")
    i.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.command == "bench":
        if args.batch_size <= 0 or args.steps <= 0 or args.warmup < 0:
            parser.error("--batch-size and --steps must be positive, --warmup non-negative")
        if args.threads is not None and args.threads <= 0:
            parser.error("--threads must be positive")
        bench(args)
    else:
        info(args)


if __name__ == "__main__":
    main()
