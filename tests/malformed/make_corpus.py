#!/usr/bin/env python3
"""make_corpus.py - write the malformed-file corpus of tests/malformed/.

Every file here is one a user might meet on disk: a model, tokenizer,
adapter or data file that is truncated, corrupt, hand-edited wrongly or made
hostile on purpose. tests/unit/test_malformed_corpus.c opens each with its
reader and checks the status and the error message listed in MANIFEST.tsv:

    file  reader  status  expected  what

file is relative to this directory (a directory for readers that take one);
reader is one of
    safetensors     lorac_st_open
    gguf            lorac_gguf_open
    model           lorac_model_load (a model directory or .gguf)
    model_nf4       lorac_model_load_quantized(..., LORAC_QLOAD_NF4)
    config          lorac_config_load_json
    tokenizer       lorac_tokenizer_load (a directory or a tokenizer file)
    adapter_config  lorac_adapter_read_config (an adapter directory)
    adapter         lorac_adapter_load onto tests/fixtures/models/tiny_gpt2
    dataset         lorac_dataset_load (default options)
    dataset_text    lorac_dataset_load_text
    instructions    lorac_dataset_load_instructions
status is a lorac_status name (LORAC_OK for a file that must load), expected
a substring of lorac_last_error() ("" for LORAC_OK).

Standard library only and deterministic: running it again rewrites the same
bytes. Usage: python3 tests/malformed/make_corpus.py   (from anywhere)
"""
import gzip
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS = []  # (file, reader, status, expected, what)


def out(rel, data):
    path = os.path.join(HERE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def case(rel, reader, status, expected, what, data=None):
    """Write `data` to rel (unless None: the file/dir was written already) and list it."""
    if data is not None:
        out(rel, data)
    assert "\t" not in expected and "\n" not in expected and "\t" not in what
    ROWS.append((rel, reader, "LORAC_" + status if status == "OK" else "LORAC_ERR_" + status, expected, what))


def jdump(obj):
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


# --------------------------------------------------------------- safetensors

def st_bytes(tensors, meta=None, raw_header=None):
    """tensors: [(name, dtype, shape, data bytes)] laid out in order."""
    hdr, buf = {}, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dtype, shape, data in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(buf), len(buf) + len(data)]}
        buf += data
    h = raw_header if raw_header is not None else json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # padded to 8 as the reference writer does
    return struct.pack("<Q", len(h)) + h + buf, len(h)


def f32(*vals):
    return struct.pack("<%df" % len(vals), *vals)


def st_header_file(header_text, data=b""):
    h = header_text.encode() if isinstance(header_text, str) else header_text
    return struct.pack("<Q", len(h)) + h + data


def make_safetensors():
    base, hlen = st_bytes([
        ("transformer.wte.weight", "F32", [4, 2], f32(*range(8))),
        ("transformer.h.0.attn.c_attn.weight", "F16", [2, 6], b"\x00\x3c" * 12),
        ("transformer.ln_f.bias", "F32", [2], f32(0.5, -0.5)),
    ], meta={"format": "pt"})
    d = "safetensors/"
    case(d + "trunc_empty.safetensors", "safetensors", "FORMAT", "too short for the 8-byte header length",
         "0 bytes", b"")
    case(d + "trunc_in_length.safetensors", "safetensors", "FORMAT", "file is 5 bytes, too short",
         "cut inside the 8-byte header length", base[:5])
    case(d + "trunc_after_length.safetensors", "safetensors", "FORMAT", "is more than the 0 bytes after it",
         "cut right after the header length", base[:8])
    case(d + "trunc_mid_header.safetensors", "safetensors", "FORMAT", "is more than the",
         "cut inside the JSON header", base[:8 + hlen // 2])
    case(d + "trunc_after_header.safetensors", "safetensors", "FORMAT", "run past the end of the 0-byte data buffer",
         "header complete, no tensor data", base[:8 + hlen])
    case(d + "trunc_mid_data.safetensors", "safetensors", "FORMAT", "'transformer.ln_f.bias': data_offsets [56,64] run past the end of the 60-byte data buffer",
         "cut inside the last tensor's data", base[:-4])
    case(d + "header_len_u64max.safetensors", "safetensors", "FORMAT", "header length 18446744073709551615 is over the 100 MB limit",
         "header length 2^64-1", struct.pack("<Q", 2**64 - 1) + base[8:])
    case(d + "header_len_past_end.safetensors", "safetensors", "FORMAT", "is more than the",
         "header length one more than the rest of the file", struct.pack("<Q", len(base) - 7) + base[8:])
    E = lambda name, dt, shape, off: '"%s":{"dtype":"%s","shape":%s,"data_offsets":%s}' % (name, dt, shape, off)
    case(d + "offsets_past_end.safetensors", "safetensors", "FORMAT", "data_offsets [0,4000] run past the end of the 16-byte data buffer",
         "end offset far past the data", st_header_file("{" + E("w", "F32", "[1000]", "[0,4000]") + "}", bytes(16)))
    case(d + "offsets_2pow53.safetensors", "safetensors", "FORMAT", "data_offsets [0,9007199254740992] run past the end",
         "end offset 2^53", st_header_file("{" + E("w", "F32", "[2251799813685248]", "[0,9007199254740992]") + "}", bytes(16)))
    case(d + "offsets_1e30.safetensors", "safetensors", "FORMAT", "\"data_offsets\" is not two non-negative integers",
         "end offset 1e30 (not an exact integer)", st_header_file("{" + E("w", "F32", "[4]", "[0,1e30]") + "}", bytes(16)))
    case(d + "offsets_negative.safetensors", "safetensors", "FORMAT", "\"data_offsets\" is not two non-negative integers",
         "negative begin offset", st_header_file("{" + E("w", "F32", "[2]", "[-8,0]") + "}", bytes(16)))
    case(d + "dims_absurd.safetensors", "safetensors", "FORMAT", "shape has more elements than fit in 64 bits",
         "shape [2^31, 2^31, 2^31]", st_header_file("{" + E("w", "F32", "[2147483648,2147483648,2147483648]", "[0,16]") + "}", bytes(16)))
    case(d + "dims_too_large_for_dtype.safetensors", "safetensors", "FORMAT", "F64 [1099511627776,2097152] is too large to address",
         "2^61 elements of F64 (2^64 bytes)", st_header_file("{" + E("w", "F64", "[1099511627776,2097152]", "[0,16]") + "}", bytes(16)))
    case(d + "dtype_fp8.safetensors", "safetensors", "UNSUPPORTED", "unknown dtype \"F8_E4M3\"",
         "a dtype lorac does not read", st_header_file("{" + E("w", "F8_E4M3", "[16]", "[0,16]") + "}", bytes(16)))
    case(d + "dtype_lowercase.safetensors", "safetensors", "UNSUPPORTED", "unknown dtype \"f32\"",
         "dtype spelled in lower case", st_header_file("{" + E("w", "f32", "[4]", "[0,16]") + "}", bytes(16)))
    case(d + "dtype_size_mismatch.safetensors", "safetensors", "FORMAT", "hold 16 bytes but F16 [4] needs 8",
         "F16 tensor with F32-sized data", st_header_file("{" + E("w", "F16", "[4]", "[0,16]") + "}", bytes(16)))
    case(d + "dup_names.safetensors", "safetensors", "FORMAT", "duplicate tensor name 'transformer.wte.weight'",
         "the same name twice in one header",
         st_header_file("{" + E("transformer.wte.weight", "F32", "[2]", "[0,8]") + "," +
                        E("transformer.wte.weight", "F32", "[2]", "[8,16]") + "}", bytes(16)))
    case(d + "overlap.safetensors", "safetensors", "FORMAT", "overlap",
         "two tensors sharing bytes",
         st_header_file("{" + E("a", "F32", "[4]", "[0,16]") + "," + E("b", "F32", "[2]", "[8,16]") + "}", bytes(16)))
    case(d + "invalid_utf8_name.safetensors", "safetensors", "FORMAT", "header is not valid UTF-8 (byte 0xff at offset 11)",
         "a tensor name with a 0xff byte",
         st_header_file(b'{"w\xff":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', bytes(8)))
    case(d + "header_deep_nesting.safetensors", "safetensors", "FORMAT", "header is not valid JSON",
         "JSON header nested 100,000 deep", st_header_file("[" * 100000))
    case(d + "metadata_not_string.safetensors", "safetensors", "FORMAT", "\"__metadata__\" value for 'epoch' is not a string",
         "__metadata__ with a number value", st_header_file('{"__metadata__":{"epoch":3}}'))
    # a sharded checkpoint whose index names a shard that is a truncated file
    shard, _ = st_bytes([("a", "F32", [2], f32(1, 2))])
    out(d + "sharded_truncated/model-00001-of-00002.safetensors", shard)
    out(d + "sharded_truncated/model-00002-of-00002.safetensors", shard[:12])
    out(d + "sharded_truncated/model.safetensors.index.json", jdump({
        "metadata": {"total_size": 16},
        "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    case(d + "sharded_truncated", "safetensors", "FORMAT", "model-00002-of-00002.safetensors: header length",
         "sharded set whose second shard is cut short")
    out(d + "sharded_escape/model.safetensors.index.json", jdump({"weight_map": {"a": "../../../etc/passwd"}}))
    case(d + "sharded_escape", "safetensors", "FORMAT", "shard name is not a relative file name",
         "index pointing a shard outside its directory")
    out(d + "sharded_deep/model.safetensors.index.json", "{\"weight_map\":" + "[" * 1500)
    case(d + "sharded_deep", "safetensors", "FORMAT", "not valid JSON", "index nested 1,500 deep (cJSON's limit is 1,000)")


# ----------------------------------------------------------------------- GGUF

def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_parts():
    """A small llama-style GGUF; returns (bytes, dict of boundary offsets)."""
    off = {}
    b = b"GGUF"
    off["magic"] = len(b)
    b += struct.pack("<I", 3)
    off["version"] = len(b)
    b += struct.pack("<Q", 1)
    off["n_tensors"] = len(b)
    b += struct.pack("<Q", 3)
    off["header"] = len(b)
    b += gstr("general.architecture")
    off["key0"] = len(b)
    b += struct.pack("<I", 8)
    off["type0"] = len(b)
    b += gstr("llama")
    off["kv0"] = len(b)
    b += gstr("general.alignment") + struct.pack("<II", 4, 32)
    off["kv1_start"] = off["kv0"]
    b += gstr("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3)
    off["arr_head"] = len(b)
    b += gstr("<unk>") + gstr("a") + gstr("b")
    off["kvs"] = len(b)
    b += gstr("token_embd.weight")
    off["tname"] = len(b)
    b += struct.pack("<I", 2) + struct.pack("<QQ", 4, 3) + struct.pack("<I", 0)
    off["tdims"] = len(b)
    b += struct.pack("<Q", 0)
    off["infos"] = len(b)
    b += bytes(-len(b) % 32)
    off["data"] = len(b)
    b += f32(*[0.25 * i for i in range(12)])
    return b, off


def gguf_file(n_tensors, kvs, infos, data=b"", version=3, align=32):
    b = b"GGUF" + struct.pack("<IQQ", version, n_tensors, len(kvs)) + b"".join(kvs) + b"".join(infos)
    b += bytes(-len(b) % align)
    return b + data


def kv_str(k, v):
    return gstr(k) + struct.pack("<I", 8) + gstr(v)


def kv_u32(k, v):
    return gstr(k) + struct.pack("<II", 4, v)


def tinfo(name, ne, ggml_type=0, offset=0):
    return gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) + \
        struct.pack("<IQ", ggml_type, offset)


def make_gguf():
    base, o = gguf_parts()
    d = "gguf/"
    cuts = [
        ("trunc_magic", 2, "not a GGUF file (starts with 'GG??'", "cut inside the magic"),
        ("trunc_version", o["magic"] + 2, "file ends inside the header", "cut inside the version"),
        ("trunc_counts", o["n_tensors"] + 3, "file ends inside the header", "cut inside the metadata count"),
        ("trunc_key_length", o["header"] + 4, "tensor count 1 cannot fit in a 28-byte file", "cut inside the first key's length"),
        ("trunc_key", o["header"] + 12, "tensor count 1 cannot fit in a 36-byte file", "cut inside the first key"),
        ("trunc_value_type", o["key0"] + 2, "metadata count 3 cannot fit in a 54-byte file", "cut inside a value type"),
        ("trunc_value", o["type0"] + 10, "metadata 'general.architecture': string length 5 runs past the end",
         "cut inside a string value"),
        ("trunc_array", o["arr_head"] + 10, "metadata 'tokenizer.ggml.tokens': array of 3 elements cannot fit in the 10 bytes left",
         "cut inside a string array"),
        ("trunc_tensor_name", o["kvs"] + 10, "tensor info 0: string length 17 runs past the end",
         "cut inside a tensor name"),
        ("trunc_tensor_dims", o["tname"] + 8, "file ends inside the info of tensor 'token_embd.weight'",
         "cut inside a tensor's dimensions"),
        ("trunc_tensor_offset", o["tdims"] + 4, "file ends inside the info of tensor 'token_embd.weight'",
         "cut inside a tensor's data offset"),
        ("trunc_before_data", o["infos"], "file ends before its tensor data (data would start at byte 256, file is 235 bytes)",
         "tensor infos complete, no data"),
        ("trunc_mid_data", o["data"] + 20, "'token_embd.weight': F32 data at offset 0 (48 bytes) runs past the end of the file (20 bytes of data)",
         "cut inside the tensor data"),
    ]
    for name, n, msg, what in cuts:
        case(d + name + ".gguf", "gguf", "FORMAT", msg, what, base[:n])
    case(d + "version1.gguf", "gguf", "UNSUPPORTED", "GGUF version 1 is not supported", "GGUF v1 header",
         b"GGUF" + struct.pack("<IIIQ", 1, 0, 0, 0))
    case(d + "big_endian.gguf", "gguf", "UNSUPPORTED", "big-endian GGUF is not supported", "a big-endian v3 file",
         b"GGUF" + struct.pack(">IQQ", 3, 0, 0))
    case(d + "n_tensors_absurd.gguf", "gguf", "FORMAT", "tensor count 9223372036854775807 cannot fit in a",
         "tensor count 2^63-1", gguf_file(2**63 - 1, [], []))
    case(d + "n_kv_absurd.gguf", "gguf", "FORMAT", "metadata count 18446744073709551615 cannot fit",
         "metadata count 2^64-1", b"GGUF" + struct.pack("<IQQ", 3, 0, 2**64 - 1) + bytes(64))
    case(d + "key_length_overflow.gguf", "gguf", "FORMAT", "string length 18446744073709551615 runs past the end",
         "a key length of 2^64-1", b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**64 - 1) + bytes(32))
    case(d + "array_length_overflow.gguf", "gguf", "FORMAT", "array of 4611686018427387904 elements cannot fit",
         "a u32 array claiming 2^62 elements",
         b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gstr("arr") + struct.pack("<IIQ", 9, 4, 2**62) + bytes(32))
    case(d + "array_nested_deep.gguf", "gguf", "FORMAT", "arrays nested more than 8 deep",
         "arrays of arrays 12 deep",
         b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gstr("deep") + struct.pack("<I", 9) +
         struct.pack("<IQ", 9, 1) * 12 + bytes(64))
    case(d + "value_type_unknown.gguf", "gguf", "FORMAT", "metadata 'general.name' has unknown value type 13",
         "value type 13", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gstr("general.name") + struct.pack("<I", 13) + bytes(16))
    case(d + "dup_key.gguf", "gguf", "FORMAT", "duplicate metadata key 'general.architecture'",
         "the same key twice", gguf_file(0, [kv_str("general.architecture", "llama"), kv_str("general.architecture", "gpt2")], []))
    case(d + "alignment_not_pow2.gguf", "gguf", "FORMAT", "general.alignment must be a power of two",
         "general.alignment = 48", gguf_file(1, [kv_u32("general.alignment", 48)], [tinfo("w", [8])], f32(*range(8)), align=48))
    case(d + "offset_past_end.gguf", "gguf", "FORMAT", "tensor 'w': F32 data at offset 4096 (32 bytes) runs past the end",
         "a data offset past the end of the file", gguf_file(1, [], [tinfo("w", [8], 0, 4096)], f32(*range(8))))
    case(d + "offset_overflow.gguf", "gguf", "FORMAT", "tensor 'w': F32 data at offset 18446744073709551584",
         "a data offset of 2^64-32 (wraps when added)", gguf_file(1, [], [tinfo("w", [8], 0, 2**64 - 32)], f32(*range(8))))
    case(d + "offset_misaligned.gguf", "gguf", "FORMAT", "data offset 4 is not aligned to 32 bytes",
         "a data offset that is not aligned", gguf_file(1, [], [tinfo("w", [8], 0, 4)], bytes(64)))
    case(d + "dims_absurd.gguf", "gguf", "FORMAT", "dimension ne[1] = 1099511627776 is zero or makes the element count overflow",
         "ne = [2^40, 2^40]", gguf_file(1, [], [tinfo("w", [2**40, 2**40])], bytes(32)))
    case(d + "dims_zero.gguf", "gguf", "FORMAT", "dimension ne[1] = 0 is zero",
         "a zero dimension", gguf_file(1, [], [tinfo("w", [8, 0])], bytes(32)))
    case(d + "ndims_5.gguf", "gguf", "FORMAT", "tensor 'w' has 5 dimensions, GGUF allows at most 4",
         "5 dimensions", gguf_file(1, [], [tinfo("w", [1, 1, 1, 1, 1])], bytes(32)))
    case(d + "type_unknown.gguf", "gguf", "UNSUPPORTED", "ggml type 99 (unknown)", "ggml type 99",
         gguf_file(1, [], [tinfo("w", [8], 99)], bytes(32)))
    case(d + "type_iq2.gguf", "gguf", "UNSUPPORTED", "ggml type 16 (IQ2_XXS)", "an i-quant lorac does not read",
         gguf_file(1, [], [tinfo("w", [256], 16)], bytes(128)))
    case(d + "q4_0_row_not_blocks.gguf", "gguf", "FORMAT", "ne[0] = 40 is not a multiple of the Q4_0 block size 32",
         "a Q4_0 row that is not whole blocks", gguf_file(1, [], [tinfo("w", [40], 2)], bytes(64)))
    case(d + "dup_tensor.gguf", "gguf", "FORMAT", "duplicate tensor name 'w'", "two tensors named w",
         gguf_file(2, [], [tinfo("w", [8], 0, 0), tinfo("w", [8], 0, 32)], bytes(64)))
    # a structurally valid GGUF that is not a model lorac can build
    case(d + "model_no_arch.gguf", "model", "FORMAT", "no general.architecture key",
         "a GGUF without general.architecture, loaded as a model",
         gguf_file(1, [kv_str("general.name", "x")], [tinfo("w", [8])], f32(*range(8))))
    case(d + "model_arch_falcon.gguf", "model", "UNSUPPORTED", "architecture 'falcon' is not supported",
         "a falcon GGUF, loaded as a model",
         gguf_file(1, [kv_str("general.architecture", "falcon")], [tinfo("w", [8])], f32(*range(8))))


# ---------------------------------------------------------------- config.json

GPT2 = {"model_type": "gpt2", "n_embd": 8, "n_head": 2, "n_layer": 1, "n_positions": 8, "vocab_size": 16,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5}
LLAMA = {"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "num_key_value_heads": 2,
         "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 16, "hidden_act": "silu",
         "max_position_embeddings": 16, "rms_norm_eps": 1e-5}


def make_config():
    d = "config/"
    case(d + "empty.json", "config", "FORMAT", "not a JSON object", "0 bytes", b"")
    case(d + "truncated.json", "config", "FORMAT", "not a JSON object", "cut in the middle", jdump(GPT2)[:60])
    case(d + "array.json", "config", "FORMAT", "not a JSON object", "a JSON array", "[1, 2, 3]\n")
    case(d + "deep_100k.json", "config", "FORMAT", "not a JSON object",
         "arrays nested 100,000 deep (cJSON stops at 1,000)", "[" * 100000)
    case(d + "invalid_utf8.json", "config", "UNSUPPORTED", "model_type 'gpt",
         "model_type with a 0xff byte", b'{"model_type": "gpt\xff2"}\n')
    case(d + "no_model_type.json", "config", "UNSUPPORTED", "model_type '' is not supported",
         "no model_type", jdump({k: v for k, v in GPT2.items() if k != "model_type"}))
    case(d + "model_type_t5.json", "config", "UNSUPPORTED", "model_type 't5' is not supported",
         "an encoder-decoder model", jdump({"model_type": "t5", "d_model": 8}))
    case(d + "activation_relu.json", "config", "UNSUPPORTED", "activation_function 'relu' is not supported",
         "GPT-2 with a relu MLP", jdump(dict(GPT2, activation_function="relu")))
    case(d + "hidden_act_gelu.json", "config", "UNSUPPORTED", "hidden_act 'gelu' is not supported",
         "Llama with gelu", jdump(dict(LLAMA, hidden_act="gelu")))
    case(d + "rope_scaling.json", "config", "UNSUPPORTED", "rope_scaling type 'yarn' is not supported",
         "Llama with a RoPE scaling lorac does not read (yarn)", jdump(dict(LLAMA, rope_scaling={"type": "yarn", "factor": 2.0})))
    case(d + "softcap_negative.json", "config", "FORMAT", "must be positive",
         "Gemma 2 with a negative attention soft cap",
         jdump(dict(LLAMA, model_type="gemma2", hidden_activation="gelu_pytorch_tanh", attn_logit_softcapping=-50.0)))
    case(d + "hidden_1e300.json", "config", "FORMAT", "hidden size missing or out of range",
         "n_embd = 1e300", jdump(dict(GPT2, n_embd=1e300)))
    case(d + "layers_negative.json", "config", "FORMAT", "layer count missing or out of range",
         "n_layer = -1", jdump(dict(GPT2, n_layer=-1)))
    case(d + "vocab_string.json", "config", "FORMAT", "vocab size missing or out of range",
         "vocab_size given as a string", jdump(dict(GPT2, vocab_size="16")))
    case(d + "heads_not_dividing.json", "config", "FORMAT", "hidden size is not a multiple of the head count",
         "n_embd 10 with 4 heads", jdump(dict(GPT2, n_embd=10, n_head=4)))
    case(d + "kv_heads_not_dividing.json", "config", "FORMAT", "key/value head count must divide the head count",
         "4 heads, 3 key/value heads", jdump(dict(LLAMA, num_attention_heads=4, num_key_value_heads=3)))
    case(d + "head_dim_odd.json", "config", "FORMAT", "head_dim must be even for RoPE",
         "Llama head_dim 3", jdump(dict(LLAMA, head_dim=3)))
    case(d + "head_dim_huge.json", "config", "FORMAT", "head_dim out of range",
         "Llama head_dim 2^31-1", jdump(dict(LLAMA, head_dim=2147483647)))
    case(d + "context_zero.json", "config", "FORMAT", "context length out of range",
         "n_positions 0", jdump(dict(GPT2, n_positions=0)))


# ---------------------------------------------------------------- tokenizers

def make_tokenizers():
    d = "tokenizer/"
    case(d + "deep/tokenizer.json", "tokenizer", "FORMAT", "not valid JSON",
         "tokenizer.json nested 1,500 deep", "{\"model\":" + "[" * 1500)
    tj = {"version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer":
          {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
          "post_processor": None, "decoder": {"type": "ByteLevel"},
          "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}
    text = json.dumps(tj, indent=1)
    case(d + "truncated/tokenizer.json", "tokenizer", "FORMAT", "not valid JSON (near byte",
         "tokenizer.json cut in the middle", text[: len(text) // 2])
    case(d + "invalid_utf8/tokenizer.json", "tokenizer", "FORMAT", "tokenizer.json:1: invalid UTF-8 byte 0xc3",
         "a vocabulary entry with the byte pair 0xc3 0x28",
         json.dumps(tj).encode().replace(b'"b": 1', b'"\xc3(": 1'))
    case(d + "sparse_ids/tokenizer.json", "tokenizer", "FORMAT", "model.vocab has 3 entries but ids up to 16000000",
         "3 tokens, one with id 16,000,000 (a 16M-entry table from 300 bytes)",
         json.dumps(dict(tj, model=dict(tj["model"], vocab={"a": 0, "b": 1, "ab": 16000000}))))
    out(d + "vocab_sparse/vocab.json", json.dumps({"a": 0, "b": 16777000}))
    out(d + "vocab_sparse/merges.txt", "#version: 0.2\n")
    case(d + "vocab_sparse", "tokenizer", "FORMAT", "vocab has 2 entries but ids up to 16777000",
         "vocab.json with ids far beyond its size")
    out(d + "merges_invalid_utf8/vocab.json", json.dumps({"a": 0, "b": 1, "ab": 2}))
    out(d + "merges_invalid_utf8/merges.txt", b"#version: 0.2\na b\n\xe2\x82 b\n")
    case(d + "merges_invalid_utf8", "tokenizer", "FORMAT", "merges.txt:3: invalid UTF-8 byte 0xe2",
         "merges.txt with a cut 3-byte character")
    case(d + "vocab_txt_invalid_utf8/vocab.txt", "tokenizer", "FORMAT", "vocab.txt:4: invalid UTF-8 byte 0xed",
         "vocab.txt with an encoded surrogate (0xed 0xa0 0x80)", b"[PAD]\n[UNK]\n[CLS]\n\xed\xa0\x80\n[SEP]\n")
    case(d + "vocab_txt_empty_line/vocab.txt", "tokenizer", "FORMAT", "vocab.txt:3: empty line",
         "vocab.txt with a blank line", "[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n")
    # tokenizer.model (protobuf): field 1 = pieces (length-delimited)
    case(d + "spm_varint_overflow/tokenizer.model", "tokenizer", "FORMAT", "tokenizer.model",
         "a varint longer than 10 bytes", b"\x0a" + b"\xff" * 12)
    case(d + "spm_length_past_end/tokenizer.model", "tokenizer", "FORMAT", "truncated",
         "a piece whose length runs past the end", b"\x0a\x80\x80\x80\x80\x10" + b"\x0a\x01a")
    piece = lambda s, score: b"\x0a" + bytes([len(s)]) + s + b"\x15" + struct.pack("<f", score)
    pieces = [piece(b"<unk>", 0) + b"\x18\x02", piece(b"<s>", 0) + b"\x18\x03", piece(b"</s>", 0) + b"\x18\x03",
              piece(b"\xe2\x96\x81a", -1), piece(b"b", -2)]
    trainer = b"\x12\x02\x18\x02"  # trainer_spec { model_type: BPE }
    model = trainer + b"".join(b"\x0a" + bytes([len(p)]) + p for p in pieces)
    cut = len(trainer) + sum(2 + len(p) for p in pieces[:2]) + 5
    case(d + "spm_truncated/tokenizer.model", "tokenizer", "FORMAT", "truncated or corrupt protobuf",
         "a SentencePiece BPE model cut inside its third piece", model[:cut])
    case(d + "spm_empty/tokenizer.model", "tokenizer", "FORMAT", "no pieces",
         "0 bytes", b"")
    case(d + "added_no_content/tokenizer.json", "tokenizer", "FORMAT", "added_tokens: an entry has no content",
         "an added token without its text",
         json.dumps(dict(tj, added_tokens=[{"id": 3, "special": True}])))


# ------------------------------------------------------------------ adapters

ADAPTER = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_dropout": 0.0, "bias": "none",
           "target_modules": ["transformer.h.0.attn.c_proj"], "task_type": "CAUSAL_LM",
           "base_model_name_or_path": "tests/fixtures/models/tiny_gpt2", "fan_in_fan_out": True}
A_NAME = "base_model.model.transformer.h.0.attn.c_proj.lora_A.weight"
B_NAME = "base_model.model.transformer.h.0.attn.c_proj.lora_B.weight"


def adapter_dir(rel, cfg, tensors=None):
    out(rel + "/adapter_config.json", jdump(cfg) if not isinstance(cfg, (str, bytes)) else cfg)
    if tensors is not None:
        out(rel + "/adapter_model.safetensors", st_bytes(tensors, meta={"format": "pt"})[0])


def lora_tensors(a_vals=None, b_shape=(32, 2), a_dtype="F32"):
    a_vals = a_vals if a_vals is not None else [0.01 * ((i * 7) % 13 - 6) for i in range(2 * 32)]
    a_data = f32(*a_vals) if a_dtype == "F32" else struct.pack("<%di" % len(a_vals), *[int(v) for v in a_vals])
    return [(A_NAME, a_dtype, [2, 32], a_data),
            (B_NAME, "F32", list(b_shape), f32(*[0.001 * i for i in range(b_shape[0] * b_shape[1])]))]


def make_adapters():
    d = "adapter/"
    bad = [
        ("r_zero", dict(ADAPTER, r=0), "FORMAT", "'r' missing or not a positive number", "r = 0"),
        ("r_string", dict(ADAPTER, r="8"), "FORMAT", "'r' missing or not a positive number", "r given as a string"),
        ("r_huge", dict(ADAPTER, r=1e12), "FORMAT", "'r' = 1e+12 is more than 65536",
         "r = 1e12 (would allocate terabytes)"),
        ("peft_type_prefix", dict(ADAPTER, peft_type="PREFIX_TUNING"), "FORMAT", "peft_type is not LORA",
         "a prefix-tuning adapter"),
        ("targets_missing", {k: v for k, v in ADAPTER.items() if k != "target_modules"}, "FORMAT",
         "target_modules missing", "no target_modules"),
        ("target_too_long", dict(ADAPTER, target_modules=["x" * 200]), "FORMAT",
         "target_modules entries must be short strings", "a 200-character module name"),
        ("targets_too_many", dict(ADAPTER, target_modules=["m%d" % i for i in range(40)]), "FORMAT",
         "target_modules entries must be short strings", "40 target modules (lorac keeps 32)"),
        ("target_number", dict(ADAPTER, target_modules=["c_attn", 7]), "FORMAT",
         "target_modules entries must be short strings", "a number among the target modules"),
        ("bias_unknown", dict(ADAPTER, bias="some"), "FORMAT", "bias 'some' unknown", "bias = some"),
        ("num_classes_huge", dict(ADAPTER, lorac={"num_classes": 1e9}), "FORMAT",
         "lorac.num_classes = 1e+09 is out of range [0, 65536]", "a classifier head of 10^9 classes"),
        ("num_classes_negative", dict(ADAPTER, lorac={"num_classes": -3}), "FORMAT",
         "lorac.num_classes = -3 is out of range", "a negative class count"),
        ("rank_pattern_float", dict(ADAPTER, rank_pattern={"c_proj": 2.5}), "FORMAT",
         "rank_pattern['c_proj'] must be a positive integer", "a fractional per-module rank"),
        ("rank_pattern_huge", dict(ADAPTER, rank_pattern={"c_proj": 1e12}), "FORMAT",
         "rank_pattern['c_proj'] must be a positive integer", "a per-module rank of 10^12"),
        ("alpha_pattern_string", dict(ADAPTER, alpha_pattern={"c_proj": "16"}), "FORMAT",
         "alpha_pattern['c_proj'] must be a positive number", "a per-module alpha given as a string"),
        ("pattern_not_object", dict(ADAPTER, rank_pattern=[4]), "FORMAT", "rank_pattern is not an object",
         "rank_pattern as a list"),
        ("init_unknown", dict(ADAPTER, init_lora_weights="corda"), "FORMAT",
         "init_lora_weights 'corda' is not supported", "an init lorac does not have"),
    ]
    for name, cfg, st, msg, what in bad:
        adapter_dir(d + name, cfg)
        case(d + name, "adapter_config", st, msg, what)
    adapter_dir(d + "not_object", "[\"LORA\", 8]\n")
    case(d + "not_object", "adapter_config", "FORMAT", "not a JSON object", "a JSON array")
    adapter_dir(d + "deep", "{\"r\":" + "[" * 1500 + "]" * 1500 + "}")
    case(d + "deep", "adapter_config", "FORMAT", "not a JSON object", "nested 1,500 deep")
    adapter_dir(d + "truncated", jdump(ADAPTER)[:50])
    case(d + "truncated", "adapter_config", "FORMAT", "not a JSON object", "cut in the middle")
    # weights: loaded onto tests/fixtures/models/tiny_gpt2 (n_embd 32)
    good = lora_tensors()
    adapter_dir(d + "ok", ADAPTER, good)
    case(d + "ok", "adapter", "OK", "", "the valid base case the others break")
    vals = [0.01] * 64
    vals[17] = float("nan")
    adapter_dir(d + "weights_nan", ADAPTER, lora_tensors(vals))
    case(d + "weights_nan", "adapter", "NUMERIC", "holds NaN at element 17", "a NaN in lora_A")
    vals = [0.01] * 64
    vals[3] = float("inf")
    adapter_dir(d + "weights_inf", ADAPTER, lora_tensors(vals))
    case(d + "weights_inf", "adapter", "NUMERIC", "holds an infinite value at element 3", "+Inf in lora_A")
    adapter_dir(d + "weights_shape", ADAPTER, lora_tensors(b_shape=(16, 2)))
    case(d + "weights_shape", "adapter", "SHAPE", "lora_B.weight' is [16,2], the model expects [32,2]",
         "lora_B for a smaller model")
    adapter_dir(d + "weights_missing", ADAPTER, lora_tensors()[:1])
    case(d + "weights_missing", "adapter", "FORMAT", "lora_B.weight' is missing", "lora_B absent")
    adapter_dir(d + "weights_int", ADAPTER, lora_tensors(a_dtype="I32"))
    case(d + "weights_int", "adapter", "UNSUPPORTED",
         "adapter_model.safetensors: tensor 'base_model.model.transformer.h.0.attn.c_proj.lora_A.weight': cannot convert I32",
         "lora_A stored as I32")
    adapter_dir(d + "weights_truncated", ADAPTER, None)
    out(d + "weights_truncated/adapter_model.safetensors", st_bytes(good, meta={"format": "pt"})[0][:300])
    case(d + "weights_truncated", "adapter", "FORMAT", "adapter_model.safetensors", "adapter_model.safetensors cut short")


# -------------------------------------------------------------------- models

def gpt2_tensors(C=8, L=1, V=16, P=8, fill=None):
    """The tensors of a GPT-2 with config GPT2 (names as tiny_gpt2 has them)."""
    shapes = [("transformer.wte.weight", [V, C]), ("transformer.wpe.weight", [P, C])]
    for i in range(L):
        h = "transformer.h.%d." % i
        shapes += [(h + "ln_1.weight", [C]), (h + "ln_1.bias", [C]), (h + "attn.c_attn.weight", [C, 3 * C]),
                   (h + "attn.c_attn.bias", [3 * C]), (h + "attn.c_proj.weight", [C, C]), (h + "attn.c_proj.bias", [C]),
                   (h + "ln_2.weight", [C]), (h + "ln_2.bias", [C]), (h + "mlp.c_fc.weight", [C, 4 * C]),
                   (h + "mlp.c_fc.bias", [4 * C]), (h + "mlp.c_proj.weight", [4 * C, C]), (h + "mlp.c_proj.bias", [C])]
    shapes += [("transformer.ln_f.weight", [C]), ("transformer.ln_f.bias", [C])]
    ts = []
    for k, (name, shape) in enumerate(shapes):
        n = 1
        for s in shape:
            n *= s
        vals = [1.0 if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight")
                else 0.02 * (((i + 3 * k) * 37) % 11 - 5) for i in range(n)]
        if fill:
            fill(name, vals)
        ts.append((name, "F32", shape, f32(*vals)))
    return ts


def model_dir(rel, cfg, tensors):
    out(rel + "/config.json", jdump(cfg))
    out(rel + "/model.safetensors", st_bytes(tensors, meta={"format": "pt"})[0])


def make_models():
    d = "model/"
    model_dir(d + "ok", GPT2, gpt2_tensors())
    case(d + "ok", "model", "OK", "", "the valid base case the others break")

    def nan_in_attn(name, vals):
        if name == "transformer.h.0.attn.c_attn.weight":
            vals[5] = float("nan")

    def inf_in_mlp(name, vals):
        if name == "transformer.h.0.mlp.c_fc.weight":
            vals[9] = float("-inf")
    model_dir(d + "weights_nan", GPT2, gpt2_tensors(fill=nan_in_attn))
    case(d + "weights_nan", "model", "NUMERIC", "tensor 'transformer.h.0.attn.c_attn.weight' holds NaN at element 5",
         "a NaN in c_attn: every base weight is checked once at load")
    case(d + "weights_nan", "model_nf4", "NUMERIC", "holds NaN at element 5", "the same, quantized for QLoRA")
    model_dir(d + "weights_inf", GPT2, gpt2_tensors(fill=inf_in_mlp))
    case(d + "weights_inf", "model", "NUMERIC", "tensor 'transformer.h.0.mlp.c_fc.weight' holds an infinite value at element 9",
         "-Inf in c_fc")
    case(d + "weights_inf", "model_nf4", "NUMERIC", "holds an infinite value at element 9", "-Inf in c_fc, quantized for QLoRA")
    model_dir(d + "wrong_shape", dict(GPT2, n_embd=12, n_head=2), gpt2_tensors())
    case(d + "wrong_shape", "model", "SHAPE", "config expects", "config.json for a wider model than its weights")
    model_dir(d + "missing_tensor", GPT2, [t for t in gpt2_tensors() if t[0] != "transformer.h.0.mlp.c_fc.weight"])
    case(d + "missing_tensor", "model", "FORMAT", "tensor 'transformer.h.0.mlp.c_fc.weight' is missing",
         "a checkpoint without one MLP weight")
    model_dir(d + "wrong_dtype", GPT2, [(n, "I32", s, b) if n == "transformer.wte.weight" else (n, dt, s, b)
                                        for n, dt, s, b in gpt2_tensors()])
    case(d + "wrong_dtype", "model", "UNSUPPORTED", "cannot convert I32 tensor data to fp32",
         "the token embedding stored as I32")
    out(d + "no_config/model.safetensors", st_bytes(gpt2_tensors())[0])
    case(d + "no_config", "model", "IO", "no config.json here", "weights without config.json")


# ---------------------------------------------------------------------- data

def make_data():
    d = "data/"
    case(d + "invalid_utf8.tsv", "dataset", "FORMAT", "invalid_utf8.tsv:3: invalid UTF-8 byte 0xe9 at column 16",
         "a Latin-1 row in a UTF-8 file", b"ham\tGo until jurong point\nspam\tFree entry\nham\tsee you caf\xe9 later\n")
    case(d + "nul_byte.csv", "dataset", "FORMAT", "nul_byte.csv:2: contains a NUL byte",
         "a NUL byte inside a row", b"label,text\nham,hello\x00world\n")
    case(d + "overlong_utf8.jsonl", "dataset", "FORMAT", "invalid UTF-8 byte 0xc0",
         "an overlong encoding of '/'", b'{"text": "a\xc0\xafb", "label": "ham"}\n')
    case(d + "unterminated_quote.csv", "dataset", "FORMAT", "unterminated_quote.csv:3: the quoted field opened on this line is never closed",
         "a quote that never closes", 'label,text\nham,"fine"\nspam,"runs to the end\nham,next\n')
    case(d + "text_after_quote.csv", "dataset", "FORMAT", "unexpected 'x' after the closing quote",
         "text after a closing quote", 'label,text\nham,"quoted"x\n')
    case(d + "missing_column.tsv", "dataset", "DATA", "missing_column.tsv:2:",
         "a row with only a label", "ham\tGo until jurong point\nspam\nham\tOk lar\n")
    case(d + "header_only.csv", "dataset", "DATA", "no data rows", "a header and nothing else", "label,text\n")
    case(d + "empty.tsv", "dataset", "DATA", "no data rows", "0 bytes", b"")
    case(d + "empty_text.jsonl", "dataset", "DATA", "empty_text.jsonl:2: empty text in 'text'",
         "a record with empty text", '{"text": "good", "label": 1}\n{"text": "", "label": 0}\n')
    case(d + "label_object.jsonl", "dataset", "DATA", "label_object.jsonl:1: label 'label' is",
         "a label that is an object", '{"text": "good", "label": {"id": 1}}\n')
    case(d + "bad_line.jsonl", "dataset", "FORMAT", "bad_line.jsonl:3: invalid JSON at column",
         "line 3 is not JSON", '{"text": "a", "label": 0}\n{"text": "b", "label": 1}\n{"text": "c", label: 1}\n')
    case(d + "deep.jsonl", "dataset", "FORMAT", "deep.jsonl:1: invalid JSON",
         "a record nested 1,500 deep", '{"text": ' + "[" * 1500 + "\n")
    case(d + "deep.json", "dataset", "FORMAT", "deep.json:1: invalid JSON at column",
         "an array nested 1,500 deep", "[" * 1500 + "]" * 1500 + "\n")
    case(d + "not_array.json", "dataset", "FORMAT", "not_array.json:2: expected a JSON array '[' of records",
         "a .json file holding a bare string", '\n"text, label"\n')
    case(d + "truncated_array.json", "dataset", "FORMAT", "the file ends inside the array; is it truncated?",
         "a JSON array cut after a record", '[\n  {"text": "a", "label": 0},\n  {"text": "b", "label": 1}\n')
    case(d + "trailing.json", "dataset", "FORMAT", "text after the end of the JSON array",
         "text after the closing ]", '[{"text": "a", "label": 0}] extra\n')
    rows = "".join("%s\tmessage number %d\n" % ("spam" if i % 3 == 0 else "ham", i) for i in range(200)).encode()
    gz = gzip.compress(rows, mtime=0)
    case(d + "truncated.tsv.gz", "dataset", "FORMAT", "truncated.tsv.gz:",
         "a gzip stream cut in half", gz[: len(gz) // 2])
    case(d + "not_gzip.tsv.gz", "dataset", "FORMAT", "not_gzip.tsv.gz:",
         "a .gz name on bytes that are gzip-like garbage", b"\x1f\x8b\x08\x00" + bytes(range(200, 256)) * 2)
    case(d + "instructions_no_output.json", "instructions", "DATA", "instructions_no_output.json:3: ",
         "a record without \"output\"", '[\n  {"instruction": "Say hi", "input": "", "output": "hi"},\n'
         '  {"instruction": "Say bye", "input": ""}\n]\n')
    case(d + "instructions_input_number.jsonl", "instructions", "DATA", "\"input\" is not a string",
         "input given as a number", '{"instruction": "Add", "input": 5, "output": "6"}\n')
    case(d + "text_invalid_utf8.txt", "dataset_text", "FORMAT", "text_invalid_utf8.txt:2: invalid UTF-8 byte 0xff",
         "plain text with a 0xff byte", b"Once upon a time.\nThere was \xff a fox.\n")


def main():
    # start from scratch so removed cases do not linger
    for name in os.listdir(HERE):
        p = os.path.join(HERE, name)
        if os.path.isdir(p):
            shutil.rmtree(p)
    make_safetensors()
    make_gguf()
    make_config()
    make_tokenizers()
    make_adapters()
    make_models()
    make_data()
    with open(os.path.join(HERE, "MANIFEST.tsv"), "w", encoding="utf-8", newline="\n") as f:
        f.write("# written by make_corpus.py; columns: file, reader, status, expected substring, what\n")
        f.write("file\treader\tstatus\texpected\twhat\n")
        for r in ROWS:
            f.write("\t".join(r) + "\n")
    by = {}
    for r in ROWS:
        by[r[1]] = by.get(r[1], 0) + 1
    print("%d cases: %s" % (len(ROWS), ", ".join("%s %d" % kv for kv in sorted(by.items()))))


if __name__ == "__main__":
    main()
