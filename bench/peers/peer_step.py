#!/usr/bin/env python3
"""peer_step - time one LoRA training step of the Python peers, the counterpart
of lorac's build/bench_step (issue 7).

    peer_step.py --impl peft|seeds --model gpt2|smollm2 [--batch 8] [--seq 128]
                 [--r 16] [--alpha 16] [--targets all-linear|attn] [--threads 2]
                 [--precision fp32|bf16] [--steps 10] [--warmup 2]
                 [--mode train|infer|peak] [--merged]

The workload is appendix E of "Build a Large Language Model (From Scratch)"
(Raschka): classification into 2 classes on the LAST token. The transformer
body (GPT2Model / LlamaModel, random init from the config, no LM head) runs
over random token ids, the hidden state of the last position goes through a
fresh trainable Linear(dim, 2) head (what PEFT's SEQ_CLS task keeps trainable
through modules_to_save), cross-entropy against random labels, backward, and
one AdamW step (lr 1e-4) over the trainable parameters. The base weights are
frozen (requires_grad False) and every dropout probability is 0, so both
sides do the same math.

  --impl peft   transformers model + peft.get_peft_model(LoraConfig(...)).
  --impl seeds  plain PyTorch in the style of the seeds' own code (Raschka's
                "Code LoRA from scratch" and LLMs-from-scratch appendix E):
                LoRALayer + LinearWithLoRA wrapped around the same modules.

  --targets all-linear  every Linear/Conv1D of the blocks
                        (GPT-2: c_attn, attn c_proj, c_fc, mlp c_proj;
                         SmolLM2: q,k,v,o,gate,up,down _proj)
  --targets attn        PEFT's default attention targets
                        (GPT-2: c_attn; Llama: q_proj, v_proj)

  --precision bf16      the standard CPU autocast recipe: forward under
                        torch.cpu.amp.autocast(dtype=torch.bfloat16), loss in
                        fp32, LoRA parameters and optimizer state in fp32.

  --mode infer          forward only under torch.no_grad (body + head),
                        unmerged adapters, or --merged (PEFT merge_and_unload;
                        for seeds the LoRA product is folded into the weights).
  --mode peak           torch.mm GFLOP/s (fp32 and bf16, n=1536, best of 5) for
                        the thread count: what this torch build reaches on a
                        plain GEMM.

Timing: `--warmup` untimed steps, then `--steps` steps each timed with
time.perf_counter around forward + loss + backward + optimizer.step +
zero_grad (infer: around one forward). Input ids are random in [0, vocab)
with a fixed seed, the same batch every step (as bench_step does).

FLOPs per token (the formula of bench/bench_step.c):
    train: 4*P + sum over adapted Linears 6*r*(in+out) + 6*T*Hq*D*n_layer
    infer: 2*P + (unmerged) sum 2*r*(in+out)          + 2*T*Hq*D*n_layer
where P = weights of the block matmuls (every Linear/Conv1D weight of the
blocks; not embeddings, not an LM head, not the 2-way classification head).

Peak RSS: like bench_step, the high-water mark is reset after setup through
/proc/self/clear_refs, so "rss_mb" is the peak over the steps (the model,
adapters and the already-loaded torch libraries count, transient setup peaks
do not; "rss_scope": "steps"); "rss_process_mb" is the peak of the whole
process (resource.getrusage ru_maxrss / 1024).

Output: exactly one JSON line on stdout. Everything else goes to stderr.
"""
import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring (head of this file) for the details.")
    p.add_argument("--impl", choices=["peft", "seeds"], default="peft")
    p.add_argument("--model", choices=["gpt2", "smollm2"], default="gpt2")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=float, default=16)
    p.add_argument("--targets", choices=["all-linear", "attn"], default="all-linear")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--mode", choices=["train", "infer", "peak"], default="train")
    p.add_argument("--merged", action="store_true", help="infer: merge the adapters into the weights first")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.batch < 1 or a.seq < 1 or a.r < 1 or a.threads < 1 or a.steps < 1 or a.warmup < 0:
        p.error("batch, seq, r, threads, steps must be >= 1 and warmup >= 0")
    if a.merged and a.mode != "infer":
        p.error("--merged goes with --mode infer")
    return a


ARGS = parse_args()

# Thread counts go into the environment before torch (and its OpenMP /
# OpenBLAS / MKL runtimes) is imported: they read these once, at load.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(ARGS.threads)

ALL_LINEAR = {
    "gpt2": ["c_attn", "c_proj", "c_fc"],  # "c_proj" matches attn.c_proj and mlp.c_proj
    "smollm2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
ATTN = {"gpt2": ["c_attn"], "smollm2": ["q_proj", "v_proj"]}  # PEFT's defaults for gpt2 / llama


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# the model: transformer body + fresh Linear(dim, 2) head on the last token

def make_body(model):
    from transformers import GPT2Config, GPT2Model, LlamaConfig, LlamaModel
    if model == "gpt2":
        cfg = GPT2Config(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, summary_first_dropout=0.0,
                         use_cache=False)  # defaults: GPT-2 124M
        body = GPT2Model(cfg)
        blocks = body.h
        heads, dim, layers = cfg.n_head, cfg.n_embd, cfg.n_layer
    else:
        cfg = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                          num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                          rope_theta=100000, rms_norm_eps=1e-5, tie_word_embeddings=True,
                          attention_dropout=0.0, use_cache=False)  # SmolLM2-135M
        body = LlamaModel(cfg)
        blocks = body.layers
        heads, dim, layers = cfg.num_attention_heads, cfg.hidden_size, cfg.num_hidden_layers
    return body, blocks, cfg.vocab_size, dict(n_head=heads, head_dim=dim // heads, n_layer=layers, dim=dim)


class LastTokenClassifier(nn.Module):
    """Appendix E: logits = out_head(body(ids))[:, -1, :]; here the head goes on
    the last position only (the same result, without the T-1 unused rows)."""

    def __init__(self, body, dim, n_class=2):
        super().__init__()
        self.body = body
        self.head = nn.Linear(dim, n_class)

    def forward(self, input_ids):
        h = self.body(input_ids=input_ids).last_hidden_state
        return self.head(h[:, -1, :])


def is_matmul(m):
    from transformers.pytorch_utils import Conv1D
    return isinstance(m, (nn.Linear, Conv1D))


def matmul_shape(m):
    """(in, out) of a Linear or of GPT-2's Conv1D (weight [in, out])."""
    if isinstance(m, nn.Linear):
        return m.in_features, m.out_features
    return m.weight.shape[0], m.weight.shape[1]


def block_matmuls(blocks, targets):
    """P (weights of every block matmul) and the (in, out) of the adapted ones."""
    P, adapted = 0, []
    for name, m in blocks.named_modules():
        if is_matmul(m):
            i, o = matmul_shape(m)
            P += i * o
            if name.rsplit(".", 1)[-1] in targets:
                adapted.append((i, o))
    return P, adapted


# --------------------------------------------------------------------------
# seeds: LoRA from scratch, in the style of Raschka's code

class LoRALayer(nn.Module):
    def __init__(self, in_dim, out_dim, rank, alpha):
        super().__init__()
        self.A = nn.Parameter(torch.empty(in_dim, rank))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # similar to standard weight initialization
        self.B = nn.Parameter(torch.zeros(rank, out_dim))
        self.rank = rank
        self.alpha = alpha

    def forward(self, x):
        # The appendix computes alpha * (x @ A @ B); we scale by alpha / rank,
        # PEFT's (and lorac's) convention, so both peers do the same math. The
        # cost is the same either way.
        return (self.alpha / self.rank) * (x @ self.A @ self.B)


class LinearWithLoRA(nn.Module):
    def __init__(self, linear, rank, alpha):
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)

    def forward(self, x):
        return self.linear(x) + self.lora(x)

    def merged(self):
        with torch.no_grad():  # W [out, in] += scale * (A @ B)^T
            self.linear.weight += (self.lora.alpha / self.lora.rank) * (self.lora.A @ self.lora.B).T
        return self.linear


class Conv1DWithLoRA(nn.Module):
    """The same wrapper for GPT-2's Conv1D (y = x @ W + b, W [in, out])."""

    def __init__(self, conv, rank, alpha):
        super().__init__()
        self.conv = conv
        self.lora = LoRALayer(conv.weight.shape[0], conv.weight.shape[1], rank, alpha)

    def forward(self, x):
        return self.conv(x) + self.lora(x)

    def merged(self):
        with torch.no_grad():  # W [in, out] += scale * A @ B
            self.conv.weight += (self.lora.alpha / self.lora.rank) * (self.lora.A @ self.lora.B)
        return self.conv


def replace_linear_with_lora(model, rank, alpha, targets):
    """Appendix E's replace_linear_with_lora, restricted to the target names."""
    for name, module in model.named_children():
        if isinstance(module, nn.Linear) and name in targets:
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        elif is_matmul(module) and name in targets:  # transformers' Conv1D
            setattr(model, name, Conv1DWithLoRA(module, rank, alpha))
        else:
            replace_linear_with_lora(module, rank, alpha, targets)


def merge_seeds(model):
    for name, module in model.named_children():
        if isinstance(module, (LinearWithLoRA, Conv1DWithLoRA)):
            setattr(model, name, module.merged())
        else:
            merge_seeds(module)


# --------------------------------------------------------------------------

def build(a):
    torch.manual_seed(a.seed)
    body, blocks, vocab, shp = make_body(a.model)
    targets = ALL_LINEAR[a.model] if a.targets == "all-linear" else ATTN[a.model]
    P, adapted = block_matmuls(blocks, targets)
    model = LastTokenClassifier(body, shp["dim"])
    if a.impl == "peft":
        from peft import LoraConfig, get_peft_model
        lc = LoraConfig(r=a.r, lora_alpha=a.alpha, lora_dropout=0.0, target_modules=targets,
                        fan_in_fan_out=(a.model == "gpt2"), bias="none", modules_to_save=["head"])
        model = get_peft_model(model, lc)  # freezes the base, the head stays trainable (modules_to_save)
    else:
        for p in model.parameters():
            p.requires_grad = False
        replace_linear_with_lora(model.body, a.r, a.alpha, set(targets))
        for p in model.head.parameters():
            p.requires_grad = True
    n_adapted = sum(1 for m in model.modules() if isinstance(m, (LinearWithLoRA, Conv1DWithLoRA)))
    if a.impl == "peft":
        from peft.tuners.lora import LoraLayer
        n_adapted = sum(1 for m in model.modules() if isinstance(m, LoraLayer))
    if n_adapted != len(adapted):
        raise SystemExit(f"peer_step: {n_adapted} adapted modules, expected {len(adapted)}")
    return model, vocab, shp, P, adapted


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def autocast(a):
    if a.precision == "bf16":
        return torch.cpu.amp.autocast(dtype=torch.bfloat16)
    import contextlib
    return contextlib.nullcontext()


def run_peak(a):
    n = 1536
    out = {"mode": "peak", "threads": a.threads, "torch": torch.__version__}
    for key, dt in (("torch_mm_f32_gflops", torch.float32), ("torch_mm_bf16_gflops", torch.bfloat16)):
        x = torch.rand(n, n).to(dt)
        y = torch.rand(n, n).to(dt)
        torch.mm(x, y)
        best = 0.0
        for _ in range(5):
            t = time.perf_counter()
            torch.mm(x, y)
            best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t) / 1e9)
        out[key] = round(best, 1)
    print(json.dumps(out), flush=True)


def main():
    a = ARGS
    if a.mode == "peak":
        return run_peak(a)
    model, vocab, shp, P, adapted = build(a)
    B, T = a.batch, a.seq
    attn = T * shp["n_head"] * shp["head_dim"] * shp["n_layer"]
    if a.mode == "train":
        flop_tok = 4 * P + sum(6 * a.r * (i + o) for i, o in adapted) + 6 * attn
    else:
        flop_tok = 2 * P + (0 if a.merged else sum(2 * a.r * (i + o) for i, o in adapted)) + 2 * attn
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)  # LoRA + the 2-way head
    trainable_lora = sum(a.r * (i + o) for i, o in adapted)

    g = torch.Generator().manual_seed(a.seed + 1)
    ids = torch.randint(0, vocab, (B, T), generator=g)
    labels = torch.randint(0, 2, (B,), generator=g)

    if a.mode == "train":
        model.train()  # every dropout probability is 0: train mode does the same math as eval
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step():
            with autocast(a):
                logits = model(ids)
            loss = nn.functional.cross_entropy(logits.float(), labels)  # loss in fp32
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        if a.merged:
            if a.impl == "peft":
                model = model.merge_and_unload()
            else:
                merge_seeds(model)
        model.eval()

        def step():
            with torch.no_grad(), autocast(a):
                model(ids)

    setup_rss = peak_rss_mb()
    scope = "steps" if reset_hwm() else "process"
    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    rss = peak_rss_mb()
    out = {
        "impl": a.impl, "mode": a.mode, "model": a.model, "batch": B, "seq": T, "threads": a.threads,
        "r": a.r, "alpha": a.alpha, "targets": a.targets, "precision": a.precision,
        "trainable": trainable, "trainable_lora": trainable_lora,
        "ms_median": round(1e3 * med, 3), "ms_min": round(1e3 * min(times), 3),
        "ms_max": round(1e3 * max(times), 3), "steps": a.steps,
        "tok_s": round(B * T / med, 2), "gflops": round(flop_tok * B * T / med / 1e9, 3),
        "rss_mb": round(rss, 1), "rss_scope": scope, "rss_process_mb": round(max(rss, setup_rss), 1),
        "flop_per_token": flop_tok, "torch": torch.__version__,
    }
    if a.mode == "infer":
        out["merged"] = bool(a.merged)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
