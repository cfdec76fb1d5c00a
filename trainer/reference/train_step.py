"""The PyTorch anchor of `trainer bench`: our training step, timed in PyTorch.

PyTorch is a measuring stick here, never a dependency of the product. Install it in a
virtual environment outside the repository (the CPU-only index is the small download;
where it is unreachable, plain PyPI works too but pulls the CUDA wheels, several GB):

    python3 -m venv /work/venvs/torch
    /work/venvs/torch/bin/pip install torch numpy --index-url https://download.pytorch.org/whl/cpu
    # or, when download.pytorch.org is unreachable:
    /work/venvs/torch/bin/pip install torch numpy

then `RAYON_NUM_THREADS=1 trainer bench --pytorch /work/venvs/torch/bin/python`, or run
this script alone with the same options as `trainer bench` (plus `--threads`).

The model is ours (engine/src/cpu/transformer.rs) with the trainer's config
(trainer/src/train.rs `model_config`): pre-norm Llama blocks, RMSNorm `x / sqrt(mean(x^2)
+ 1e-5) * w`, rotary embeddings rotating halves (pair d = dims d, d + D/2) with base
10000, causal softmax attention (grouped-query when --kv-heads < --heads, optional
per-head q/k RMSNorm), SwiGLU MLP, final norm, lm_head tied to the embeddings, no biases.
The weights and the batch are drawn with our own generator (SplitMix64 + Box-Muller,
engine/src/init.rs; std 0.02, norms 1; seed 1 for weights, 7 for tokens), so both
start from identical numbers and the losses agree. The step is the bench's: mean
cross-entropy, backward, gradients clipped to global norm 1, AdamW (betas 0.9/0.95,
eps 1e-8, weight decay 0.1 on matrices only) at lr 1e-4; eager float32, no
torch.compile. Prints one JSON line on stdout.
"""

import argparse
import json
import math
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as e:  # exit status 3: `trainer bench` explains how to install them
    print(f"cannot import {e.name or e}: {e}", file=sys.stderr)
    sys.exit(3)

MASK64 = (1 << 64) - 1


class SplitMix64:
    """engine/src/init.rs's generator, vectorised: draw i is mix(seed + (i+1) * gamma)."""

    GAMMA = np.uint64(0x9E3779B97F4A7C15)

    def __init__(self, seed):
        self.seed, self.drawn = np.uint64(seed), 0

    def next_u64(self, n):
        with np.errstate(over="ignore"):
            z = self.seed + np.arange(self.drawn + 1, self.drawn + n + 1, dtype=np.uint64) * self.GAMMA
            self.drawn += n
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return z ^ (z >> np.uint64(31))

    def next_normal(self, n):
        u = (self.next_u64(2 * n) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
        u1, u2 = np.maximum(u[0::2], np.finfo(np.float64).tiny), u[1::2]
        return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)


def rms_norm(x, w, eps):
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class Model(torch.nn.Module):
    def __init__(self, a, std=0.02, seed=1):
        super().__init__()
        self.a, self.d = a, a.hidden // a.heads
        h, d, q, kv, i = a.hidden, self.d, a.heads * self.d, a.kv_heads * self.d, a.intermediate
        rng = SplitMix64(seed)
        self.names = []

        def param(name, *shape):  # in tensor_layout order, so the draws line up with ours
            if name.endswith("norm"):
                value = torch.ones(shape)
            else:
                value = torch.from_numpy((rng.next_normal(math.prod(shape)) * std).astype(np.float32))
            setattr(self, name, torch.nn.Parameter(value.reshape(shape)))

        param("embed", a.vocab, h)
        for n in range(a.layers):
            param(f"l{n}_input_norm", h)
            for name, shape in [("q", (q, h)), ("k", (kv, h)), ("v", (kv, h)), ("o", (h, q))]:
                param(f"l{n}_{name}", *shape)
            param(f"l{n}_post_norm", h)
            for name, shape in [("gate", (i, h)), ("up", (i, h)), ("down", (h, i))]:
                param(f"l{n}_{name}", *shape)
            if a.qk_norm:
                param(f"l{n}_q_norm", d)
                param(f"l{n}_k_norm", d)
        param("final_norm", h)
        if a.positions == "rope":  # engine/src/position.rs rope_frequencies, angles in f64
            freqs = 10000.0 ** (-2.0 * torch.arange(d // 2, dtype=torch.float64) / d)
            angles = torch.arange(a.length, dtype=torch.float64)[:, None] * freqs
            self.register_buffer("cos", angles.cos().float(), persistent=False)
            self.register_buffer("sin", angles.sin().float(), persistent=False)

    def rotate(self, x):  # [B, heads, T, D]: rotate-half, pair d is (d, d + D/2)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * self.cos - x2 * self.sin, x2 * self.cos + x1 * self.sin], dim=-1)

    def forward(self, tokens):
        a, eps, p = self.a, 1e-5, lambda name: getattr(self, name)
        b, t = tokens.shape
        x = F.embedding(tokens, self.embed)
        for n in range(a.layers):
            h = rms_norm(x, p(f"l{n}_input_norm"), eps)
            q = F.linear(h, p(f"l{n}_q")).view(b, t, a.heads, self.d).transpose(1, 2)
            k = F.linear(h, p(f"l{n}_k")).view(b, t, a.kv_heads, self.d).transpose(1, 2)
            v = F.linear(h, p(f"l{n}_v")).view(b, t, a.kv_heads, self.d).transpose(1, 2)
            if a.qk_norm:
                q, k = rms_norm(q, p(f"l{n}_q_norm"), eps), rms_norm(k, p(f"l{n}_k_norm"), eps)
            if a.positions == "rope":
                q, k = self.rotate(q), self.rotate(k)
            repeat = a.heads // a.kv_heads  # head h reads key/value head h // repeat
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
            if a.attention == "sdpa":
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:
                scores = q @ k.transpose(-1, -2) / math.sqrt(self.d)
                future = torch.ones(t, t, dtype=torch.bool).triu(1)
                o = scores.masked_fill(future, float("-inf")).softmax(-1) @ v
            x = x + F.linear(o.transpose(1, 2).reshape(b, t, -1), p(f"l{n}_o"))
            h = rms_norm(x, p(f"l{n}_post_norm"), eps)
            gated = F.silu(F.linear(h, p(f"l{n}_gate"))) * F.linear(h, p(f"l{n}_up"))
            x = x + F.linear(gated, p(f"l{n}_down"))
        return F.linear(rms_norm(x, self.final_norm, eps), self.embed)  # tied lm_head


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("batch", 8), ("length", 128), ("layers", 4), ("hidden", 128),
                          ("heads", 4), ("kv-heads", 0), ("intermediate", 384),
                          ("vocab", 4096), ("steps", 20), ("warmup", 3), ("threads", 1)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--positions", choices=["rope", "none"], default="rope")
    ap.add_argument("--qk-norm", choices=["true", "false"], default="false")
    ap.add_argument("--attention", choices=["sdpa", "math"], default="sdpa",
                    help="sdpa: F.scaled_dot_product_attention (idiomatic); math: ours op by op")
    a = ap.parse_args()
    a.kv_heads, a.qk_norm = a.kv_heads or a.heads, a.qk_norm == "true"
    if a.hidden % a.heads or a.heads % a.kv_heads or (a.hidden // a.heads) % 2 or a.steps < 1:
        sys.exit(f"inconsistent shape: {vars(a)}")
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)

    model = Model(a)
    tokens = SplitMix64(7).next_u64(a.batch * (a.length + 1)) % np.uint64(a.vocab)
    window = torch.from_numpy(tokens.astype(np.int64)).view(a.batch, a.length + 1)
    inputs, targets = window[:, :-1].contiguous(), window[:, 1:].contiguous()
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    gains = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": matrices, "weight_decay": 0.1}, {"params": gains, "weight_decay": 0.0}],
        lr=1e-4, betas=(0.9, 0.95), eps=1e-8)

    losses, phases = [], [0.0, 0.0, 0.0]
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(inputs).view(-1, a.vocab), targets.view(-1))
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        t3 = time.perf_counter()
        losses.append(loss.item())
        if step >= a.warmup:
            for i, seconds in enumerate([t1 - t0, t2 - t1, t3 - t2]):
                phases[i] += seconds / a.steps
    ms = 1e3 * sum(phases)
    timed = losses[a.warmup:]
    print(json.dumps({
        "ms_per_step": ms,
        "tokens_per_second": a.batch * a.length / (ms / 1e3),
        "forward_ms": 1e3 * phases[0],
        "backward_ms": 1e3 * phases[1],
        "update_ms": 1e3 * phases[2],
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "loss_mean": sum(timed) / len(timed),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "attention": a.attention,
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - one line on stderr, non-zero exit
        print(f"train_step.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
