#!/usr/bin/env python3
"""Reference token ids for the regex pre-tokenizers, Gemma's SentencePiece
and added tokens (tests/unit/test_tokenizer_regex.c).

Run by hand (not by ctest), from the repository root, with transformers 5
(it converts a GGUF's tokenizer to a fast tokenizer):

    HF_HUB_OFFLINE=1 /work/main/.venv-peer/bin/python tests/ref/make_tokenizer_regex_fixtures.py

(written with transformers 5.25.0, tokenizers 0.23.3, gguf-py from that
venv; no network). Texts: tests/fixtures/tokenizer/strings.json plus the
EXTRA strings below; each case carries its text as hex, so the C test needs
nothing else. Invalid UTF-8 reaches HF through bytes.decode("utf-8",
"replace"), as in make_tokenizer_fixtures.py.

Outputs (tests/fixtures/tokenizer/):
  qwen25.json   Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF (model cache): the
                ids of AutoTokenizer.from_pretrained(dir, gguf_file=...),
                i.e. transformers' conversion of the GGUF's tokenizer
                (Split(Qwen2 regex) + ByteLevel, 22 added tokens).
  gemma3.json   Gemma 3 270M Q4_K_M GGUF, the same way (262,144 pieces,
                BPE with byte fallback, 6,384 added tokens).
  llama3_regex_tokenizer.json  a small byte-level BPE trained here with the
                `tokenizers` library on a few KB of text, with Llama 3's
                exact pre_tokenizer (Split(its regex, Isolated) +
                ByteLevel(use_regex=false)), ignore_merges and special
                tokens; no Llama 3 tokenizer.json is on this machine and the
                Hugging Face hub is out of reach.
  llama3_regex.json   its ids (with and without special tokens) and decodes.
  split_mix_tokenizer.json  a small tokenizer exercising the other Split
                behaviors (MergedWithNext, Contiguous, Removed with a string
                pattern, MergedWithPrevious, invert), Digits, ByteLevel's
                prefix space and an NFKC normalizer.
  split_mix.json      its ids.
Model-dependent files are skipped (with a note) when the GGUF is absent.
"""

import json
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("LORAC_DATA", os.path.join(ROOT, "..", "shared", "data"))
CACHE = os.environ.get("LORAC_CACHE", os.path.join(ROOT, ".cache"))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
MODELS = {
    "qwen25": ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
    "gemma3": ("gemma-3-270m", "gemma-3-270m-q4_k_m.gguf"),
}
LLAMA3_RE = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]

EXTRA = [
    ("numbers_1_to_7", "1 12 123 1234 12345 123456 1234567 12345678901234567890"),
    ("contractions_upper", "WE'RE HE'LL THEY'VE I'M She'S it'T 'Ll 're"),
    ("ws_runs", "a \n\n  b\t\t\n c   \n\n\n   d  \r\n\r\n e\u3000\u3000f"),
    ("mongolian_vs", "a\u180eb \u180e c"),
    ("code_block", "int main(void) {\n    for (int i = 0; i < 10; i++) {\n        printf(\"%d\\n\", i);\n    }\n}\n"),
    ("python_code", "    def __init__(self, x=1.5e-3):\n\t\tself.x = x  # note\n"),
    ("accents_cjk", "Ça va? Øresund — 北京市 東京 서울 こんにちは"),
    ("arabic", "مرحبا بالعالم ١٢٣ سلام"),
    ("emoji_mix", "ok👍🏽 🚀🚀🚀 ❤️‍🔥 done"),
    ("fullwidth", "ＡＢＣ １２３ ﬁ ﬂ ① ℌ ㎏"),
    ("qwen_chat", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nabc<|im_start|>def<|endoftext|>"),
    ("gemma_chat", "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n<bos>x<eos>"),
    ("llama3_chat", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"),
    ("html", "<table><tr><td>x</td></tr></table> <h1>Title</h1>"),
    ("dashes", "a-b--c - d, e.f; g HELLO World xYz"),
]


def texts():
    with open(os.path.join(FIX, "strings.json")) as f:
        items = [(it["name"], bytes.fromhex(it["hex"])) for it in json.load(f)["strings"]]
    return items + [(n, t.encode("utf-8")) for n, t in EXTRA]


def hexs(s):
    return s.encode("utf-8").hex()


def dump(name, obj):
    path = os.path.join(FIX, name)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=True)
        f.write("\n")
    print("wrote", path, os.path.getsize(path), "bytes")


def cases_for(encode, decode, strings, with_special):
    cases = []
    for name, raw in strings:
        text = raw.decode("utf-8", "replace")
        ids = encode(text, False)
        c = {"name": name, "hex": raw.hex(), "ids": ids, "decoded_hex": hexs(decode(ids, False)),
             "decoded_skip_hex": hexs(decode(ids, True))}
        if with_special:
            c["ids_special"] = encode(text, True)
        cases.append(c)
    return cases


# ---------------------------------------------------------------- GGUF models
def gguf_model(key, strings):
    from transformers import AutoTokenizer

    d, f = MODELS[key]
    path = os.path.join(CACHE, "models", d, f)
    if not os.path.exists(path):
        print(f"{path} not found - {key}.json not written", file=sys.stderr)
        return
    tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=f)
    fast = tok.backend_tokenizer
    pre = json.loads(fast.to_str())["pre_tokenizer"]
    dump(f"{key}.json", {
        "comment": f"transformers {__import__('transformers').__version__} AutoTokenizer.from_pretrained(dir, "
        f"gguf_file='{f}'): ids of encode(text, add_special_tokens=False) and decode(ids). pre_tokenizer: "
        + json.dumps(pre)[:300],
        "gguf": f"models/{d}/{f}",
        "vocab_size": len(tok),
        "cases": cases_for(lambda t, s: fast.encode(t, add_special_tokens=s).ids,
                           lambda ids, skip: fast.decode(ids, skip_special_tokens=skip), strings, False),
    })


# ---------------------------------------------------------------- small trained tokenizers
def training_text():
    with open(os.path.join(DATA, "sms_spam", "SMSSpamCollection"), encoding="utf-8") as f:
        sms = f.read()[:6000]
    return [sms, "".join(t for _, t in EXTRA) * 2]


def train(pre_tokenizer, normalizer, vocab_size, specials, ignore_merges):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer=trainer)
    return tok


def small(name, tok, strings, comment):
    tok.save(os.path.join(FIX, f"{name}_tokenizer.json"))
    print("wrote", name + "_tokenizer.json", os.path.getsize(os.path.join(FIX, f"{name}_tokenizer.json")), "bytes")
    dump(f"{name}.json", {
        "comment": comment,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "cases": cases_for(lambda t, s: tok.encode(t, add_special_tokens=s).ids,
                           lambda ids, skip: tok.decode(ids, skip_special_tokens=skip), strings, True),
    })


def llama3(strings):
    from tokenizers import Regex, pre_tokenizers, processors

    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok = train(pre, None, 1200, LLAMA3_SPECIALS, True)
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B",
                                                       special_tokens=[("<|begin_of_text|>", 0)])
    small("llama3_regex", tok, strings, "tokenizers-trained byte-level BPE (1,200 pieces) with Llama 3's "
          "pre_tokenizer, ignore_merges, Llama 3's special tokens and BOS template; ids from tokenizers "
          f"{__import__('tokenizers').__version__}")


def split_mix(strings):
    from tokenizers import Regex, normalizers, pre_tokenizers

    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s+"), behavior="merged_with_next"),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Split("-", behavior="removed"),
        pre_tokenizers.Split(Regex(r"[,.;]"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"\p{Lu}+"), behavior="contiguous", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
    ])
    tok = train(pre, normalizers.NFKC(), 600, ["<|x|>"], False)
    small("split_mix", tok, strings, "tokenizers-trained byte-level BPE (600 pieces), normalizer NFKC, "
          "pre_tokenizer Sequence[Split(\\s+, MergedWithNext), Digits(false), Split('-', Removed), "
          "Split([,.;], MergedWithPrevious), Split(\\p{Lu}+, Contiguous, invert), ByteLevel(add_prefix_space)]")


def main():
    strings = texts()
    llama3(strings)
    split_mix(strings)
    for key in MODELS:
        gguf_model(key, strings)


if __name__ == "__main__":
    main()
