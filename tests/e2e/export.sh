#!/bin/bash
# End-to-end check of `lorac export --format gguf`: the PEFT fixture adapters
# export to llama.cpp LoRA GGUFs whose header, metadata and tensor list a
# small independent reader (Python's struct, below) agrees with; usage errors
# exit 2, refusals and bad files exit 1, each with one line; an existing --out
# is kept unless --overwrite; a failed export leaves no file behind. With the
# shared data: a Llama rsLoRA adapter and a GPT-2 split-q|k|v adapter trained
# by `lorac train` export too (alpha = scale * r; attn_qkv as rank 3r).
source "$(dirname "$0")/lib/common.bash"

F=$SRC/tests/fixtures
LL=$F/models/tiny_llama
LA=$F/parity/tiny_llama_peft_adapter
GA=$F/parity/tiny_gpt2_peft_adapter

expect 0 "" -- "$BIN" export --help
if grep -q -- "--format" "$T/out" && grep -q "llama.cpp" "$T/out"; then ok; else bad "export --help lacks --format / llama.cpp"; fi
if "$BIN" --help | grep -q "^  export "; then ok; else bad "lorac --help does not list export"; fi
expect 2 "adapter is required" -- "$BIN" export --model "$LL" --out "$T/a.gguf"
expect 2 "out is required" -- "$BIN" export --model "$LL" --adapter "$LA"
expect 2 "model is required" -- "$BIN" export --adapter "$LA" --out "$T/a.gguf"
expect 2 "--format 'onnx' is not supported" -- "$BIN" export --model "$LL" --adapter "$LA" --format onnx --out "$T/a.gguf"
expect 2 "--type 'q4_0' is not supported" -- "$BIN" export --model "$LL" --adapter "$LA" --type q4_0 --out "$T/a.gguf"
expect 2 "unknown option" -- "$BIN" export --model "$LL" --adapter "$LA" --out "$T/a.gguf" --bogus
expect 1 "adapter_config.json" -- "$BIN" export --model "$LL" --adapter "$T/none" --out "$T/a.gguf"
expect 1 "does not exist" -- "$BIN" export --model "$LL" --adapter "$LA" --out "$T/no/dir/a.gguf"
expect 1 "encoder" -- "$BIN" export --model "$F/models/tiny_bert" --adapter "$LA" --out "$T/bert.gguf"
if [ -e "$T/bert.gguf" ] || [ -e "$T/a.gguf" ]; then bad "a failed export left a file behind"; else ok; fi

# the Llama PEFT adapter: summary line, then an existing file is kept
"$BIN" export --model "$LL" --adapter "$LA" --format gguf --out "$T/a.gguf" >"$T/sum" 2>"$T/err"
if [ $? -eq 0 ] && grep -q "wrote $T/a.gguf: 28 tensors (14 LoRA modules, r 4), arch llama, adapter.lora.alpha 8, F32" "$T/sum"; then
    ok
else
    bad "export llama: $(cat "$T/sum" "$T/err")"
fi
cp "$T/a.gguf" "$T/a.keep"
expect 2 "already exists" -- "$BIN" export --model "$LL" --adapter "$LA" --out "$T/a.gguf"
if cmp -s "$T/a.gguf" "$T/a.keep"; then ok; else bad "a refused export changed the existing file"; fi
expect 0 "" -- "$BIN" export --model "$LL" --adapter "$LA" --out "$T/a.gguf" --overwrite --type f16
# lorac info reads an adapter GGUF back: header keys and llama.cpp's ne order ([in, r] / [r, out])
expect 0 "adapter.type = lora, adapter.lora.alpha = 8, 28 tensors" -- "$BIN" info --model "$T/a.gguf"
expect 0 "blk.0.attn_k.weight.lora_b                   ne = [4, 16]  F16" -- "$BIN" info --model "$T/a.gguf"
if ls "$T"/*.tmp.* >/dev/null 2>&1; then bad "temporary files left behind"; else ok; fi

# a truncated export is refused by lorac's GGUF reader with one line naming it
head -c 3000 "$T/a.keep" >"$T/trunc.gguf"
expect 1 "trunc.gguf" -- "$BIN" info --model "$T/trunc.gguf"

# modules_to_save (PEFT's classifier heads): refused, naming the module
mkdir -p "$T/mts"
cp "$LA/adapter_model.safetensors" "$T/mts/"
sed 's/"modules_to_save": null/"modules_to_save": ["lm_head"]/' "$LA/adapter_config.json" >"$T/mts/adapter_config.json"
expect 1 "trains 'lm_head' in full (modules_to_save)" -- "$BIN" export --model "$LL" --adapter "$T/mts" --out "$T/mts.gguf"
# a truncated adapter file: one line naming it
mkdir -p "$T/cut"
cp "$LA/adapter_config.json" "$T/cut/"
head -c 2000 "$LA/adapter_model.safetensors" >"$T/cut/adapter_model.safetensors"
expect 1 "adapter_model.safetensors" -- "$BIN" export --model "$LL" --adapter "$T/cut" --out "$T/cut.gguf"

# GPT-2 (Conv1D PEFT adapter)
expect 0 "" -- "$BIN" export --model "$F/models/tiny_gpt2" --adapter "$GA" --out "$T/g.gguf"

# An independent reader: header, metadata, tensor infos (ne in ggml order), data bounds.
check_gguf() { # FILE ARCH ALPHA NTENSORS [NAME NE0 NE1]...
    python3 - "$@" <<'PY'
import struct, sys
path, arch, alpha, nt = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
want = {sys.argv[i]: (int(sys.argv[i + 1]), int(sys.argv[i + 2])) for i in range(5, len(sys.argv), 3)}
b = open(path, 'rb').read(); p = 0
def rd(fmt):
    global p
    v = struct.unpack_from('<' + fmt, b, p); p += struct.calcsize('<' + fmt); return v[0]
def s():
    global p
    n = rd('Q'); v = b[p:p + n].decode(); p += n; return v
size = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}
def val(t):
    if t == 8: return s()
    if t == 9:
        et, n = rd('I'), rd('Q'); return [val(et) for _ in range(n)]
    return rd(size[t])
assert b[:4] == b'GGUF', 'magic'; p = 4
assert rd('I') == 3, 'version'
n_t, n_kv = rd('Q'), rd('Q')
kv = {}
for _ in range(n_kv):
    k = s(); t = rd('I'); kv[k] = (t, val(t))
assert kv['general.type'] == (8, 'adapter'), kv.get('general.type')
assert kv['adapter.type'] == (8, 'lora'), kv.get('adapter.type')
assert kv['general.architecture'] == (8, arch), kv.get('general.architecture')
assert kv['adapter.lora.alpha'][0] == 6 and abs(kv['adapter.lora.alpha'][1] - alpha) < 1e-5 * alpha, kv.get('adapter.lora.alpha')
align = kv.get('general.alignment', (4, 32))[1]
assert kv.get('general.alignment', (4,))[0] == 4, 'general.alignment must be UINT32'
assert n_t == nt, f'{n_t} tensors, want {nt}'
infos = {}
for _ in range(n_t):
    name = s(); nd = rd('I'); ne = [rd('Q') for _ in range(nd)]; typ = rd('I'); off = rd('Q')
    assert typ in (0, 1) and off % align == 0, (name, typ, off)
    infos[name] = (ne, typ, off)
data = (p + align - 1) // align * align
pairs = {}
for name, (ne, typ, off) in infos.items():
    assert name.endswith(('.lora_a', '.lora_b')) and len(name) < 64, name
    assert data + off + ne[0] * ne[1] * (4 if typ == 0 else 2) <= len(b), f'{name} runs past the end'
    pairs.setdefault(name[:-7], {})[name[-1]] = ne
for base, ab in pairs.items():  # llama.cpp: a.ne[1] == b.ne[0] (the rank)
    assert set(ab) == {'a', 'b'} and ab['a'][1] == ab['b'][0], (base, ab)
for name, ne in want.items():
    assert name in infos and infos[name][0] == list(ne), (name, infos.get(name), ne)
PY
}
if command -v python3 >/dev/null; then
    if check_gguf "$T/a.gguf" llama 8 28 blk.0.attn_q.weight.lora_a 32 4 blk.0.attn_q.weight.lora_b 4 32 \
        blk.1.attn_k.weight.lora_b 4 16 blk.1.ffn_down.weight.lora_a 56 4 blk.1.ffn_down.weight.lora_b 4 32; then
        ok
    else
        bad "llama GGUF structure"
    fi
    if check_gguf "$T/g.gguf" gpt2 8 16 blk.0.attn_qkv.weight.lora_a 32 4 blk.0.attn_qkv.weight.lora_b 4 96 \
        blk.1.ffn_up.weight.lora_b 4 128 blk.1.ffn_down.weight.lora_a 128 4; then
        ok
    else
        bad "gpt2 GGUF structure"
    fi
fi

# adapters trained by lorac: Llama with rsLoRA (alpha 8, r 4 -> scale 4 -> alpha 16),
# GPT-2 with split q|k|v (r 2 -> attn_qkv rank 6)
S=$DATA/stories260K/hf G=$DATA/tiny_gpt2_random TOK=$DATA/gpt2_tokenizer
for i in $(seq 1 12); do printf 'Once upon a time there was a little cat named Tom. Tom liked to play with a red ball.\n\n'; done >"$T/notes.txt"
if [ -d "$S" ]; then
    "$BIN" train --model "$S" --task lm --data "$T/notes.txt" --max-steps 2 --batch 4 --lr 1e-2 --r 4 --alpha 8 --rslora \
        --target q_proj,k_proj --seed 3 --out "$T/run_l" >/dev/null 2>"$T/train.err" || { bad "train llama"; cat "$T/train.err" >&2; }
    expect 0 "" -- "$BIN" export --model "$S" --adapter "$T/run_l" --out "$T/l.gguf"
    if grep -q "adapter.lora.alpha 16," "$T/out"; then ok; else bad "rsLoRA alpha: $(cat "$T/out")"; fi
    if command -v python3 >/dev/null; then
        check_gguf "$T/l.gguf" llama 16 20 blk.4.attn_k.weight.lora_b 4 32 blk.0.attn_q.weight.lora_a 64 4 && ok || bad "rslora GGUF"
    fi
fi
if [ -d "$G" ] && [ -d "$TOK" ]; then
    "$BIN" train --model "$G" --tokenizer "$TOK" --task lm --data "$T/notes.txt" --max-steps 2 --batch 4 --lr 1e-2 --r 2 \
        --alpha 4 --split-qkv --target c_attn,c_fc --seed 3 --out "$T/run_g" >/dev/null 2>"$T/train.err" ||
        { bad "train gpt2"; cat "$T/train.err" >&2; }
    expect 0 "" -- "$BIN" export --model "$G" --adapter "$T/run_g" --out "$T/g2.gguf"
    if grep -q "2 split q|k|v as rank 6" "$T/out"; then ok; else bad "split summary: $(cat "$T/out")"; fi
    if command -v python3 >/dev/null; then
        check_gguf "$T/g2.gguf" gpt2 4 8 blk.0.attn_qkv.weight.lora_a 2 6 blk.0.attn_qkv.weight.lora_b 6 6 \
            blk.1.ffn_up.weight.lora_b 2 8 && ok || bad "split GGUF"
    fi
fi
summary e2e_export
