#!/usr/bin/env python3
"""peer_job - one real fine-tuning job end to end in transformers + PEFT, the
counterpart of one `lorac train` run in bench/real-job (issue 13, part 5).

    peer_job.py --task classify|instruct --arch decoder|encoder --model DIR
                [--gguf-file FILE] --train F.jsonl --val F.jsonl [--test F.jsonl]
                [--r 16] [--alpha 32] [--lr 5e-4] [--weight-decay 0.01]
                [--batch 8] [--max-len 128] [--epochs 1] [--max-steps N]
                [--seed 1] [--threads 2] [--out DIR]

What a PEFT user writes, with a plain training loop (closest to lorac's):

  classify, decoder  AutoModelForSequenceClassification.from_pretrained(DIR,
                     gguf_file=FILE, num_labels=C) (the GGUF dequantized to
                     fp32; its new `score` head is Linear(dim, C, bias=False),
                     normal(0, initializer_range)), get_peft_model(LoraConfig(
                     task_type="SEQ_CLS", target_modules="all-linear")): the
                     head trained in full (modules_to_save), logits on the last
                     real token. Texts encoded without special tokens and cut
                     to --max-len, as lorac does.
  classify, encoder  AutoModel.from_pretrained(DIR, add_pooling_layer=False)
                     (sentence-transformers' all-MiniLM-L6-v2 has no task
                     head) with get_peft_model(LoraConfig(target_modules=
                     "all-linear")), mean pooling over the real tokens (what
                     its modules.json says and what lorac does for it; its
                     Normalize module is not applied, as lorac does not), then
                     a fresh nn.Linear(dim, C) initialised as transformers'
                     _init_weights does (N(0, initializer_range), bias 0: what
                     lorac's default --head-init hf gives) and trained in
                     full. Inputs [CLS] text [SEP], truncated so [SEP] stays.
  instruct           AutoModelForCausalLM.from_pretrained(DIR, gguf_file=FILE),
                     LoraConfig(task_type="CAUSAL_LM", target_modules=
                     "all-linear"). Each record becomes
                     [bos if the tokenizer adds one] + encode(alpaca prompt)
                     + encode(output) + [eos], cut to --max-len, with the loss
                     on the response tokens only (labels -100 over the prompt):
                     lorac's src/train/batch.c and the Alpaca prompt of
                     src/io/dataset.c, character for character.

Dropout: lora_dropout 0 on both sides. The model's own dropout is left as its
config says (--model-dropout config): SmolLM2 has none; all-MiniLM-L6-v2's
BERT config has hidden and attention dropout 0.1, which transformers applies in
train mode (lorac applies the same rates in the same places; its masks come
from its own hash, not torch's RNG); --model-dropout 0 turns it off, as
lorac train --model-dropout 0 does.

Training: AdamW (torch.optim.AdamW, lr, weight decay; PyTorch's betas and eps,
as lorac) over the trainable parameters, constant learning rate, lora_dropout 0,
batch --batch padded to its longest example (dynamic padding, as
DataCollatorWithPadding does), the training set reshuffled every epoch from
--seed. The loss of a batch is the mean over its loss terms (examples, or
response tokens), as lorac's. Evaluation after training, forward only, batches
of --batch in file order: accuracy and mean cross-entropy per example
(classification) or per response token (instruct), on val and test.

Data files: JSONL, {"text": ..., "label": ...} (classification; labels mapped to
ids in sorted order, as lorac does by default) or {"instruction", "input",
"output"} (instruct).

Timing (time.perf_counter): load (tokenizer + model + PEFT wrapping), tokenize,
train (every step from the first batch to the last optimizer step; each step
also timed alone: forward + loss + backward + optimizer.step + zero_grad), eval,
save (the adapter, with --out). The process's wall time is measured by the
harness. Output: exactly one JSON line on stdout; everything else on stderr.
"""
import argparse
import os
import sys
import time

T_START = time.perf_counter()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See the module docstring (head of this file) for the details.")
    p.add_argument("--task", choices=["classify", "instruct"], required=True)
    p.add_argument("--arch", choices=["decoder", "encoder"], default="decoder")
    p.add_argument("--model", required=True, help="model directory (with --gguf-file: the GGUF's directory)")
    p.add_argument("--gguf-file", help="GGUF file name inside --model (transformers dequantizes it to fp32)")
    p.add_argument("--train", required=True)
    p.add_argument("--val", required=True)
    p.add_argument("--test")
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--max-len", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps (0: no limit)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="save the adapter (and the encoder's head) here")
    p.add_argument("--dora", action="store_true", help="DoRA (LoraConfig use_dora=True)")
    p.add_argument("--model-dropout", choices=["config", "0"], default="config",
                   help="the model's own dropout (BERT's hidden / attention dropout, 0.1 in all-MiniLM-L6-v2): "
                        "as its config.json says, what a user gets in train mode (default), or 0 (off)")
    a = p.parse_args(argv)
    if min(a.r, a.batch, a.max_len, a.epochs, a.threads) < 1 or a.max_steps < 0:
        p.error("r, batch, max-len, epochs, threads must be >= 1, max-steps >= 0")
    return a


ARGS = parse_args()

# thread counts go into the environment before torch is imported (as peer_step.py)
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = str(ARGS.threads)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import warnings  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(ARGS.threads)

# src/io/dataset.c, lorac_alpaca_prompt (LLMs-from-scratch ch. 7)
INTRO = ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
         "\n\n### Instruction:\n")


def alpaca_prompt(instruction, inp):
    return INTRO + instruction + ("\n\n### Input:\n" + inp if inp else "") + "\n\n### Response:\n"


def log(*x):
    print(*x, file=sys.stderr, flush=True)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class MeanPoolClassifier(nn.Module):
    """sentence-transformers' mean pooling over the real tokens, then a fresh Linear head."""

    def __init__(self, encoder, dim, n_class, init_range):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(dim, n_class)
        # transformers' _init_weights for a Linear (what BertForSequenceClassification's
        # classifier gets, and lorac's default --head-init hf): N(0, initializer_range), bias 0
        nn.init.normal_(self.classifier.weight, std=init_range)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids, attention_mask):
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.classifier(pooled)


def load(a, n_class):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer
    kw = {"gguf_file": a.gguf_file} if a.gguf_file else {}
    tok = AutoTokenizer.from_pretrained(a.model, **kw)
    if a.model_dropout == "0":  # every dropout probability the config has, to 0
        from transformers import AutoConfig
        cfg = AutoConfig.from_pretrained(a.model, **kw)
        for k in ("hidden_dropout_prob", "attention_probs_dropout_prob", "attention_dropout", "classifier_dropout",
                  "hidden_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop"):
            if getattr(cfg, k, None):
                setattr(cfg, k, 0.0)
        if a.task == "classify":
            cfg.num_labels = n_class
        kw = dict(kw, config=cfg)
    common = dict(r=a.r, lora_alpha=a.alpha, lora_dropout=0.0, target_modules="all-linear", bias="none", use_dora=a.dora)
    if a.task == "instruct":
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, **kw)
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **common))
    elif a.arch == "decoder":
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained(a.model, num_labels=n_class, dtype=torch.float32, **kw)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", **common))
    else:
        from transformers import AutoModel
        enc = AutoModel.from_pretrained(a.model, add_pooling_layer=False, dtype=torch.float32, **kw)
        enc = get_peft_model(enc, LoraConfig(**common))
        model = MeanPoolClassifier(enc, enc.config.hidden_size, n_class, getattr(enc.config, "initializer_range", 0.02))
    return tok, model


def pad_id_of(tok, model):
    for v in (getattr(getattr(model, "config", None), "pad_token_id", None), tok.pad_token_id, tok.eos_token_id):
        if v is not None:
            return v
    return 0


def tokenize(a, tok, rows, labels):
    """[(ids, target) ...]: target = class id, or the number of prompt tokens (instruct)."""
    out = []
    if a.task == "instruct":
        bos = tok.bos_token_id if getattr(tok, "add_bos_token", False) and tok.bos_token_id is not None else None
        eos = tok.eos_token_id
        for r in rows:
            p = tok.encode(alpaca_prompt(r["instruction"], r.get("input") or ""), add_special_tokens=False)
            resp = tok.encode(r["output"], add_special_tokens=False)
            ids = ([bos] if bos is not None else []) + p
            n_prompt = min(len(ids), a.max_len)
            ids = (ids + resp + ([eos] if eos is not None else []))[:a.max_len]
            out.append((ids, n_prompt))
    else:
        special = a.arch == "encoder"  # BERT: [CLS] text [SEP]; decoders: the text alone (appendix E, lorac)
        for r in rows:
            ids = tok(r["text"], add_special_tokens=special, truncation=True, max_length=a.max_len)["input_ids"]
            out.append((ids or [pad_id_of(tok, None)], labels[str(r["label"])]))
    return out


def collate(a, exs, pad):
    T = max(len(ids) for ids, _ in exs)
    ids = torch.full((len(exs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(exs), T), dtype=torch.long)
    for i, (x, _) in enumerate(exs):
        ids[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
    if a.task == "instruct":
        lab = ids.clone()
        lab[mask == 0] = -100
        for i, (_, n_prompt) in enumerate(exs):
            lab[i, :n_prompt] = -100  # position j predicts token j+1: tokens < n_prompt are never targets
        return ids, mask, lab
    return ids, mask, torch.tensor([t for _, t in exs])


def losses(a, model, batch):
    """(summed loss, loss terms, right predictions) of one batch."""
    ids, mask, tgt = batch
    if a.task == "instruct":
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1, :]
        t = tgt[:, 1:]
        s = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), t.reshape(-1),
                                        ignore_index=-100, reduction="sum")
        return s, int((t != -100).sum()), 0
    if a.arch == "decoder":
        logits = model(input_ids=ids, attention_mask=mask).logits
    else:
        logits = model(ids, mask)
    s = nn.functional.cross_entropy(logits.float(), tgt, reduction="sum")
    return s, len(tgt), int((logits.argmax(-1) == tgt).sum())


def evaluate(a, model, data, pad):
    tot, n, ok = 0.0, 0, 0
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(data), a.batch):
            l, k, c = losses(a, model, collate(a, data[s:s + a.batch], pad))
            tot, n, ok = tot + float(l), n + k, ok + c
    return tot / max(n, 1), (ok / len(data) if a.task == "classify" and data else None)


def main():
    a = ARGS
    t_import = time.perf_counter() - T_START
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    rows = {k: read_jsonl(p) for k, p in (("train", a.train), ("val", a.val), ("test", a.test)) if p}
    labels = {}
    if a.task == "classify":
        labels = {n: i for i, n in enumerate(sorted({str(r["label"]) for r in rows["train"]}))}
    t0 = time.perf_counter()
    tok, model = load(a, len(labels))
    t_load = time.perf_counter() - t0
    pad = pad_id_of(tok, model)
    t0 = time.perf_counter()
    data = {k: tokenize(a, tok, v, labels) for k, v in rows.items()}
    t_tok = time.perf_counter() - t0
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    n_all = sum(p.numel() for p in model.parameters())
    log(f"peer_job: {a.task} {a.arch}, train {len(data['train'])}, val {len(data['val'])}, "
        f"test {len(data.get('test', []))}; trainable {n_trainable:,} of {n_all:,}; load {t_load:.1f} s")

    opt = torch.optim.AdamW(trainable, lr=a.lr, weight_decay=a.weight_decay)
    g = torch.Generator().manual_seed(a.seed)
    step_s, last_loss, steps = [], None, 0
    model.train()
    t0 = time.perf_counter()
    for _ in range(a.epochs):
        order = torch.randperm(len(data["train"]), generator=g).tolist()
        for s in range(0, len(order), a.batch):
            if a.max_steps and steps >= a.max_steps:
                break
            ts = time.perf_counter()
            batch = collate(a, [data["train"][i] for i in order[s:s + a.batch]], pad)
            l, k, _ = losses(a, model, batch)
            loss = l / k
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            last_loss = float(loss)
            step_s.append(time.perf_counter() - ts)
            steps += 1
    t_train = time.perf_counter() - t0
    log(f"peer_job: {steps} steps in {t_train:.1f} s, last loss {last_loss:.4f}")

    t0 = time.perf_counter()
    res = {}
    for k in ("val", "test"):
        if k in data:
            loss, acc = evaluate(a, model, data[k], pad)
            res[f"{k}_loss"], res[f"{k}_n"] = round(loss, 6), len(data[k])
            if acc is not None:
                res[f"{k}_acc"] = round(acc, 6)
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    if a.out:
        if a.arch == "encoder" and a.task == "classify":
            model.encoder.save_pretrained(a.out)
            torch.save(model.classifier.state_dict(), os.path.join(a.out, "classifier.pt"))
        else:
            model.save_pretrained(a.out)
    t_save = time.perf_counter() - t0
    import peft
    import transformers
    out = dict(impl="peft", task=a.task, arch=a.arch, train_n=len(data["train"]), steps=steps,
               import_s=round(t_import, 3), load_s=round(t_load, 3), tokenize_s=round(t_tok, 3),
               train_s=round(t_train, 3), eval_s=round(t_eval, 3), save_s=round(t_save, 3),
               step_s_median=round(statistics.median(step_s), 4) if step_s else None,
               step_s_mean=round(t_train / steps, 4) if steps else None,
               last_loss=last_loss, trainable=n_trainable, all_params=n_all,
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
               torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
               threads=torch.get_num_threads(), model_dropout=a.model_dropout, **res)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
