"""Reference logits for the real SmolLM2-135M-Instruct Q4_1 GGUF.

transformers loads the GGUF itself (dequantizing every tensor to fp32 and
undoing llama.cpp's q/k row permutation), so its logits check lorac's whole
GGUF path: metadata -> config, dequantization, the permutation, the forward.
Writes tests/fixtures/parity/smollm2_logits.safetensors:
  input_ids I64 [2, 12]        two fixed sequences (ids < 49152)
  attention_mask I64 [2, 12]   row 1 right-padded by 3
  logits_last F32 [2, 49152]   logits at each row's last real token
Run: .venv-ref/bin/python tests/ref/make_smollm2_fixture.py  (needs `pip install gguf` in the venv)
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from transformers import AutoModelForCausalLM

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
gguf_dir = os.path.join(root, ".cache/models/smollm2-135m-instruct")
name = "SmolLM2-135M-Instruct.Q4_1.gguf"
model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=name, torch_dtype=torch.float32)
model.eval()
ids = torch.tensor([[1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 28],
                    [1, 504, 3287, 282, 4237, 314, 1, 2, 0, 0, 0, 0]], dtype=torch.int64)
mask = torch.tensor([[1] * 12, [1] * 9 + [0] * 3], dtype=torch.int64)
with torch.no_grad():
    out = model(input_ids=ids, attention_mask=mask).logits
last = mask.sum(-1) - 1
logits_last = torch.stack([out[b, last[b]] for b in range(2)]).numpy().astype(np.float32)

tensors = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "logits_last": logits_last}
header, blobs, off = {}, [], 0
for k in sorted(tensors):
    a = np.ascontiguousarray(tensors[k])
    dt = {np.dtype(np.int64): "I64", np.dtype(np.float32): "F32"}[a.dtype]
    b = a.tobytes()
    header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
header["__metadata__"] = {"generator": "tests/ref/make_smollm2_fixture.py", "model": name,
                          "transformers": __import__("transformers").__version__, "torch": torch.__version__}
h = json.dumps(header, sort_keys=True).encode()
h += b" " * (-len(h) % 8)
dst = os.path.join(root, "tests/fixtures/parity/smollm2_logits.safetensors")
with open(dst, "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
print("wrote", dst, "top-5 of row 0:", np.argsort(-logits_last[0])[:5])
