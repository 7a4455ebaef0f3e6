#!/usr/bin/env python3
"""Write reference token ids for tests/unit/test_tokenizer*.c.

Run by hand (not by ctest), from the repository root:

    python3 -m venv .venv-tok
    .venv-tok/bin/pip install tokenizers sentencepiece "transformers<5" gguf numpy protobuf
    HF_HUB_OFFLINE=1 .venv-tok/bin/python tests/ref/make_tokenizer_fixtures.py

(transformers 5 dropped the slow GPT2Tokenizer / LlamaTokenizer used for the
cross-checks; written with tokenizers 0.22.2, sentencepiece 0.2.3,
transformers 4.57.6, gguf 0.19.0. No torch is needed.)

Inputs: tests/fixtures/tokenizer/strings.json (UTF-8 bytes, hex-encoded so
that invalid sequences survive), the shared data directory ($LORAC_DATA,
default ../shared/data) and the SmolLM2 GGUF in the model cache ($LORAC_CACHE,
default .cache; optional).

Invalid UTF-8: Hugging Face tokenizers only accept Python str, so a byte
string reaches them through bytes.decode("utf-8", "replace"), which puts one
U+FFFD per maximal invalid subpart. That is the reference for every tokenizer
here, and lorac applies the same rule on entry.

Outputs (all in tests/fixtures/tokenizer/):
  gpt2.json         HF fast GPT-2 (tokenizer.json): ids with and without
                    special handling, decoded text; plus where the slow
                    GPT2Tokenizer (vocab.json + merges.txt) disagrees.
  tok512.json       stories260K tok512: sentencepiece ids (the .model's own
                    semantics) and HF fast ids from a Llama-style
                    tokenizer.json converted from the .model.
  tok512_tokenizer.json  that converted tokenizer.json (an input for the C
                    tokenizer.json loader, Llama kind).
  tok512_metaspace_tokenizer.json  the same in the newer Metaspace shape.
  tok512_vocab.gguf a GGUF holding only the tok512 tokenizer metadata
                    (tokenizer.ggml.model = "llama").
  smollm2.json      SmolLM2-135M-Instruct tokenizer rebuilt from its GGUF.
  malformed/*.gguf  tokenizer metadata lorac must refuse (bad model, pre,
                    merges, scores, ids).
"""

import json
import os
import sys

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("LORAC_DATA", os.path.join(ROOT, "..", "shared", "data"))
CACHE = os.environ.get("LORAC_CACHE", os.path.join(ROOT, ".cache"))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
SMOLLM_GGUF = os.path.join(CACHE, "models", "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")


def load_strings():
    with open(os.path.join(FIX, "strings.json")) as f:
        items = json.load(f)["strings"]
    return [(it["name"], bytes.fromhex(it["hex"])) for it in items]


def as_text(raw):
    """The str a Python user would hand to a tokenizer for these bytes."""
    return raw.decode("utf-8", "replace")


def hexs(s):
    return s.encode("utf-8").hex()


def dump(name, obj):
    path = os.path.join(FIX, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=True)
        f.write("\n")
    print("wrote", path)


def note_diffs(label, cases, key_a, key_b):
    diffs = [c["name"] for c in cases if c.get(key_a) != c.get(key_b)]
    print(f"  {label}: {len(diffs)} of {len(cases)} strings differ" + (f": {diffs}" if diffs else ""))
    return diffs


# ---------------------------------------------------------------- GPT-2
def gpt2(strings):
    from tokenizers import Tokenizer
    from transformers import GPT2Tokenizer

    d = os.path.join(DATA, "gpt2_tokenizer")
    fast = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    slow = GPT2Tokenizer(vocab_file=os.path.join(d, "vocab.json"), merges_file=os.path.join(d, "merges.txt"))
    cases = []
    for name, raw in strings:
        text = as_text(raw)
        ids = fast.encode(text, add_special_tokens=True).ids
        c = {
            "name": name,
            "ids": ids,
            "ids_no_special": fast.encode(text, add_special_tokens=False).ids,
            "decoded_hex": hexs(fast.decode(ids, skip_special_tokens=False)),
            "decoded_skip_hex": hexs(fast.decode(ids, skip_special_tokens=True)),
            "slow_ids": slow.encode(text, add_special_tokens=True),
        }
        cases.append(c)
    diffs = note_diffs("gpt2 slow vs fast", cases, "ids", "slow_ids")
    for c in cases:
        if c["name"] not in diffs:
            del c["slow_ids"]
    return {
        "comment": "HF tokenizers (fast) on gpt2_tokenizer/tokenizer.json; slow_ids present only where "
        "transformers' slow GPT2Tokenizer (vocab.json+merges.txt) disagrees. Reference: the fast ids.",
        "vocab_size": fast.get_vocab_size(with_added_tokens=True),
        "bos": 50256, "eos": 50256, "pad": -1,
        "cases": cases,
    }


# ---------------------------------------------------------------- tok512
def tok512_tokenizer_json(model_path):
    """A Llama-2-style tokenizer.json for the .model, built with the tokenizers
    API in exactly the shape of meta-llama/Llama-2-7b-hf's tokenizer.json:
    normalizer Prepend("▁") + Replace(" ", "▁"), no pre-tokenizer, BPE with
    byte_fallback and fuse_unk whose merges are derived from the piece scores
    (transformers' SentencePieceExtractor), <unk>/<s>/</s> as special added
    tokens, a template adding <s>, decoder Replace/ByteFallback/Fuse/Strip.
    (transformers' own LlamaConverter is not used: depending on its version
    and flags it drops the Prepend normalizer.)"""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers.convert_slow_tokenizer import SentencePieceExtractor
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    with open(model_path, "rb") as f:
        proto.ParseFromString(f.read())
    vocab_scores = {p.piece: p.score for p in proto.pieces}
    vocab, merges = SentencePieceExtractor(model_path).extract(vocab_scores)
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in ("<unk>", "<s>", "</s>")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def tok512_metaspace_json(model_path):
    """The same vocabulary in the newer (non-legacy) shape: no normalizer,
    pre_tokenizer Metaspace(prepend_scheme="first", split=False), decoder
    Metaspace + ByteFallback + Fuse."""
    from tokenizers import decoders, pre_tokenizers

    tok = tok512_tokenizer_json(model_path)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence(
        [decoders.Metaspace(replacement="\u2581", prepend_scheme="first"), decoders.ByteFallback(), decoders.Fuse()]
    )
    return tok


def split_specials(text, specials):
    """Leftmost-longest split of text on special-token strings."""
    out, i, start = [], 0, 0
    while i < len(text):
        best = None
        for s in specials:
            if text.startswith(s, i) and (best is None or len(s) > len(best)):
                best = s
        if best is None:
            i += 1
            continue
        if start < i:
            out.append(text[start:i])
        out.append((best,))
        i += len(best)
        start = i
    if start < len(text):
        out.append(text[start:])
    return out


def tok512(strings):
    import sentencepiece as spm

    model_path = os.path.join(DATA, "stories260K", "tok512.model")
    sp = spm.SentencePieceProcessor(model_file=model_path)
    hf = tok512_tokenizer_json(model_path)
    from transformers import LlamaTokenizer

    slow = LlamaTokenizer(vocab_file=model_path, legacy=True)  # sentencepiece underneath
    hf.save(os.path.join(FIX, "tok512_tokenizer.json"))
    print("wrote", os.path.join(FIX, "tok512_tokenizer.json"))
    meta = tok512_metaspace_json(model_path)
    meta.save(os.path.join(FIX, "tok512_metaspace_tokenizer.json"))
    print("wrote", os.path.join(FIX, "tok512_metaspace_tokenizer.json"))
    specials = {"<unk>": 0, "<s>": 1, "</s>": 2}
    cases = []
    for name, raw in strings:
        text = as_text(raw)
        # sentencepiece does not recognise "<s>" written in the text; HF does. The
        # .model reference is sentencepiece run on each piece between special
        # tokens (what HF's slow legacy LlamaTokenizer does).
        spm_ids = []
        for part in split_specials(text, specials):
            spm_ids += [specials[part[0]]] if isinstance(part, tuple) else sp.encode(part)
        hf_ids = hf.encode(text, add_special_tokens=False).ids
        c = {
            "name": name,
            "spm_ids": spm_ids,
            "spm_plain_ids": sp.encode(text),
            "slow_llama_ids": slow.encode(text, add_special_tokens=False),
            "spm_decoded_hex": hexs(sp.decode(spm_ids)),
            "hf_ids": hf_ids,
            "hf_ids_bos": hf.encode(text, add_special_tokens=True).ids,
            "hf_decoded_hex": hexs(hf.decode([1] + hf_ids, skip_special_tokens=False)),
            "hf_decoded_skip_hex": hexs(hf.decode([1] + hf_ids, skip_special_tokens=True)),
            "hf_decode_of_spm_skip_hex": hexs(hf.decode([1] + spm_ids, skip_special_tokens=True)),
        }
        meta_ids = meta.encode(text, add_special_tokens=False).ids
        c["meta_ids"] = meta_ids
        c["meta_decoded_hex"] = hexs(meta.decode([1] + meta_ids, skip_special_tokens=False))
        c["meta_decoded_skip_hex"] = hexs(meta.decode([1] + meta_ids, skip_special_tokens=True))
        cases.append(c)
    note_diffs("tok512 sentencepiece+split vs transformers slow LlamaTokenizer(legacy)", cases, "spm_ids", "slow_llama_ids")
    note_diffs("tok512 sentencepiece vs HF tokenizer.json", cases, "spm_ids", "hf_ids")
    for c in cases:
        del c["slow_llama_ids"]
    note_diffs("tok512 sentencepiece decode vs HF decode (skip)", cases, "spm_decoded_hex", "hf_decode_of_spm_skip_hex")
    return {
        "comment": "stories260K tok512. spm_ids: sentencepiece on tok512.model, split on <unk>/<s>/</s> first "
        "(reference for lorac loading the .model; remove_extra_whitespaces=true in this model). "
        "hf_ids: HF tokenizers on tok512_tokenizer.json (reference for loading that file and for the "
        "tok512_vocab.gguf fixture). meta_ids: HF on tok512_metaspace_tokenizer.json. Decoded strings are "
        "HF's decoder on [<s>] + ids.",
        "vocab_size": 512, "bos": 1, "eos": 2, "pad": -1,
        "cases": cases,
    }


def tok512_gguf():
    """A GGUF with only tokenizer metadata, as llama.cpp's converter writes for
    a sentencepiece vocabulary: tokens, scores, token_type, special ids."""
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    with open(os.path.join(DATA, "stories260K", "tok512.model"), "rb") as f:
        proto.ParseFromString(f.read())
    path = os.path.join(FIX, "tok512_vocab.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_token_list([p.piece.encode("utf-8") for p in proto.pieces])
    w.add_token_scores([p.score for p in proto.pieces])
    w.add_token_types([int(p.type) for p in proto.pieces])  # same numbering as gguf.TokenType
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", path)


# ---------------------------------------------------------------- SmolLM2
def read_gguf_tokenizer(path):
    import gguf

    r = gguf.GGUFReader(path)

    def strs(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def ints(key):
        f = r.fields[key]
        return [int(f.parts[i][0]) for i in f.data]

    def scalar(key):
        f = r.fields.get(key)
        return None if f is None else f.parts[f.data[0]][0].item()

    d = {
        "tokenizer_type": bytes(r.fields["tokenizer.ggml.model"].parts[-1]).decode(),
        "pre_tokenizer_type": bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode(),
        "tokens": strs("tokenizer.ggml.tokens"),
        "token_type": ints("tokenizer.ggml.token_type"),
        "merges": strs("tokenizer.ggml.merges"),
    }
    for k in ("bos_token_id", "eos_token_id", "padding_token_id", "unknown_token_id"):
        d[k] = scalar("tokenizer.ggml." + k)
    d["add_bos"] = scalar("tokenizer.ggml.add_bos_token")
    return d


def transformers_gguf_tokenizer():
    """AutoTokenizer.from_pretrained(dir, gguf_file=...) as a cross-check. It
    refuses to run without torch although it reads only metadata, so the torch
    check is patched out; returns None where that does not work."""
    try:
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
        from transformers import AutoTokenizer

        gguf_utils.is_torch_available = lambda: True
        return AutoTokenizer.from_pretrained(os.path.dirname(SMOLLM_GGUF), gguf_file=os.path.basename(SMOLLM_GGUF))
    except Exception as e:  # noqa: BLE001 - a cross-check only
        print("  transformers GGUF tokenizer unavailable:", e)
        return None


def smollm2(strings):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    d = read_gguf_tokenizer(SMOLLM_GGUF)
    assert d["tokenizer_type"] == "gpt2" and d["pre_tokenizer_type"] == "smollm"
    vocab = {t: i for i, t in enumerate(d["tokens"])}
    merges = [tuple(m.split(" ")) for m in d["merges"]]
    # transformers' own GGUF path (AutoTokenizer.from_pretrained(dir, gguf_file=...))
    # needs torch and has no entry for pre "smollm", so it would not split digits.
    # The tokenizer.json of HuggingFaceTB/SmolLM2-135M-Instruct and llama.cpp's
    # "smollm" pre-tokenizer both split digits one by one before the GPT-2 regex:
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    control = [AddedToken(t, normalized=False, special=True) for t, ty in zip(d["tokens"], d["token_type"]) if ty == 3]
    tok.add_special_tokens(control)

    plain = Tokenizer(models.BPE(vocab=vocab, merges=merges))  # transformers' GGUF shape: no digit split
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    plain.add_special_tokens(control)

    tf = transformers_gguf_tokenizer()
    cases = []
    for name, raw in strings:
        text = as_text(raw)
        ids = tok.encode(text, add_special_tokens=False).ids
        if tf is not None:
            tf_ids = tf.encode(text, add_special_tokens=False)
            if tf_ids != ids:
                print(f"  smollm2: transformers GGUF tokenizer differs on {name!r}: {tf_ids} vs {ids}")
        cases.append({
            "name": name,
            "ids": ids,
            "no_digit_split_ids": plain.encode(text, add_special_tokens=False).ids,
            "decoded_hex": hexs(tok.decode(ids, skip_special_tokens=False)),
            "decoded_skip_hex": hexs(tok.decode(ids, skip_special_tokens=True)),
        })
    note_diffs("smollm2 digits-split vs transformers-GGUF-style", cases, "ids", "no_digit_split_ids")
    return {
        "comment": "SmolLM2-135M-Instruct GGUF tokens+merges in HF tokenizers with pre_tokenizer "
        "Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)] (as SmolLM2's "
        "tokenizer.json and llama.cpp pre 'smollm'); control tokens are special added tokens. "
        "no_digit_split_ids: what transformers' GGUF converter (no 'smollm' entry) would give.",
        "vocab_size": len(d["tokens"]),
        "bos": d["bos_token_id"], "eos": d["eos_token_id"], "pad": d["padding_token_id"],
        "add_bos": bool(d["add_bos"]),
        "cases": cases,
    }


def malformed_ggufs():
    """Small GGUFs whose tokenizer metadata lorac must refuse with a clear
    message (tests/unit/test_tokenizer_malformed.c)."""
    import gguf
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = [bytes_to_unicode()[b] for b in range(256)]
    out = os.path.join(FIX, "malformed")
    os.makedirs(out, exist_ok=True)

    def write(name, model, tokens, merges=None, pre=None, scores=None, bos=None):
        w = gguf.GGUFWriter(os.path.join(out, name), "llama")
        if model is not None:
            w.add_tokenizer_model(model)
        if pre is not None:
            w.add_tokenizer_pre(pre)
        if tokens is not None:
            w.add_token_list(tokens)
        if merges is not None:
            w.add_token_merges(merges)
        if scores is not None:
            w.add_token_scores(scores)
        if bos is not None:
            w.add_bos_token_id(bos)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        print("wrote", os.path.join(out, name))

    write("no_tokenizer.gguf", None, None)
    write("model_bert.gguf", "bert", ["[PAD]", "a"])
    write("pre_falcon.gguf", "gpt2", alphabet + ["\u0120t"], merges=["\u0120 t"], pre="falcon")
    write("merge_unknown.gguf", "gpt2", alphabet + ["\u0120t"], merges=["\u0120 t", "\u0120 zz"], pre="gpt2")
    write("llama_no_scores.gguf", "llama", ["<unk>", "<s>", "</s>", "a"])
    write("llama_bad_bos.gguf", "llama", ["<unk>", "<s>", "</s>", "a"], scores=[0.0, 0.0, 0.0, -1.0], bos=9999)


def main():
    strings = load_strings()
    dump("gpt2.json", gpt2(strings))
    dump("tok512.json", tok512(strings))
    tok512_gguf()
    malformed_ggufs()
    if os.path.exists(SMOLLM_GGUF):
        dump("smollm2.json", smollm2(strings))
    else:
        print("SmolLM2 GGUF not found at", SMOLLM_GGUF, "- smollm2.json not written", file=sys.stderr)


if __name__ == "__main__":
    main()
