#!/usr/bin/env python3
"""Reference chat renderings, token ids and assistant masks for lorac's chat
formats (tests/unit/test_chat.c).

Run by hand (not by ctest), from the repository root, with transformers 5:

    HF_HUB_OFFLINE=1 /work/main/.venv-peer/bin/python tests/ref/make_chat_fixtures.py

(written with transformers 5.25.0, jinja2, tokenizers, gguf-py from that venv;
no network). For each template below, every conversation of CONVERSATIONS is
rendered by transformers' own Jinja renderer
(transformers.utils.chat_template_utils.render_jinja_template, what
apply_chat_template calls) with and without the generation prompt.

Templates:
  smollm2   the GGUF's tokenizer.chat_template (SmolLM2-135M-Instruct; ChatML
            with a default system message)
  qwen25    the GGUF's tokenizer.chat_template (Qwen2.5-Coder-0.5B-Instruct;
            ChatML, tools branch, "You are Qwen ..." default system message)
  gemma3    google/gemma-3-*-it's template (the gemma-3-270m GGUF here is the
            base model and carries none), rendered with the GGUF's <bos>
  llama3    meta-llama/Meta-Llama-3-8B-Instruct's template
  phi3      microsoft/Phi-3-mini-4k-instruct's template (eos_token after the
            last turn when there is no generation prompt)

Assistant spans: none of these templates has {% generation %} markers, so the
span of assistant message i is found from the renderings themselves: the
conversation up to i rendered with the generation prompt is a prefix of the
whole; the span starts there and covers the message's content as the
template writes it (trimmed where the template trims) plus the turn's end
marker (<|im_end|>, <end_of_turn>, <|eot_id|>, <|end|>), not the newline
after it. That is what TRL's assistant_only_loss trains on with templates
that have the markers. Spans are written as UTF-8 byte offsets.

Token ids: the text tokenized whole without added specials (what
apply_chat_template(tokenize=True) does; the template writes any BOS) by the
GGUF's tokenizer as transformers converts it (smollm2, qwen25, gemma3) or by
tests/fixtures/tokenizer/llama3_regex_tokenizer.json (a small tokenizer with
Llama 3's specials; llama3). Token t is in the mask when its character
range overlaps an assistant span (HF's return_assistant_tokens_mask uses
char_to_token over the span, the same thing). phi3 has no tokenizer at hand:
text and spans only.
"""

import json
import os
import sys

from transformers.utils.chat_template_utils import render_jinja_template

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("LORAC_CACHE", os.path.join(ROOT, ".cache"))
FIX = os.path.join(ROOT, "tests", "fixtures", "chat")

GEMMA3_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    "    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    "        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n"
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\\n'}}\n"
    "{%- endif -%}\n")

LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + "
    "'<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}")

SYS = {"role": "system", "content": "You are a terse assistant. Answer in one line."}
CONVERSATIONS = [
    ("single", [{"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."}]),
    ("single_system", [SYS, {"role": "user", "content": "Name a primary color."},
                       {"role": "assistant", "content": "Red."}]),
    ("multi", [{"role": "user", "content": "Hi!"},
               {"role": "assistant", "content": "Hello, how can I help?"},
               {"role": "user", "content": "Add 2 and 3.\nThen double it."},
               {"role": "assistant", "content": "2 + 3 = 5; doubled: 10."}]),
    ("multi_system", [SYS, {"role": "user", "content": "Translate 'chat' to French."},
                      {"role": "assistant", "content": "chat (le chat) \u2014 caf\u00e9 \u2615"},
                      {"role": "user", "content": "  And to German?  "},
                      {"role": "assistant", "content": "  Katze.  "}]),
    ("prompt_only", [{"role": "user", "content": "Write a haiku about rain."}]),
    ("prompt_system", [SYS, {"role": "user", "content": "Why is the sky blue?"}]),
]
END = {"smollm2": "<|im_end|>", "qwen25": "<|im_end|>", "gemma3": "<end_of_turn>", "llama3": "<|eot_id|>",
       "phi3": "<|end|>"}
TRIM = {"gemma3", "llama3"}


def gguf_template(path):
    import gguf
    r = gguf.GGUFReader(path)
    f = r.fields["tokenizer.chat_template"]
    return bytes(f.parts[f.data[0]]).decode("utf-8")


def gguf_tokenizer(folder, name):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(os.path.join(CACHE, "models", folder), gguf_file=name)


def render(tpl, msgs, gen, bos, eos):
    out, _ = render_jinja_template(conversations=[msgs], chat_template=tpl, add_generation_prompt=gen,
                                   bos_token=bos, eos_token=eos)
    return out[0]


def spans_of(name, tpl, msgs, text, bos, eos):
    """Character spans of every assistant message (content + end marker)."""
    spans = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prefix = render(tpl, msgs[:i], True, bos, eos)
        assert text.startswith(prefix), (name, i)
        body = (m["content"].strip() if name in TRIM else m["content"]) + END[name]
        assert text[len(prefix):].startswith(body), (name, i, text[len(prefix):])
        spans.append((len(prefix), len(prefix) + len(body)))
    return spans


def byte_off(text, i):
    return len(text[:i].encode("utf-8"))


def main():
    os.makedirs(FIX, exist_ok=True)
    sm = ("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    qw = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
    ge = ("gemma-3-270m", "gemma-3-270m-q4_k_m.gguf")
    todo = []  # (name, template, tokenizer or None, gguf relative path or None, bos, eos)
    for name, (folder, file), tpl in [("smollm2", sm, None), ("qwen25", qw, None), ("gemma3", ge, GEMMA3_TEMPLATE)]:
        path = os.path.join(CACHE, "models", folder, file)
        if not os.path.exists(path):
            print(f"skip {name}: {path} is absent", file=sys.stderr)
            continue
        tok = gguf_tokenizer(folder, file)
        todo.append((name, tpl or gguf_template(path), tok, f"models/{folder}/{file}", tok.bos_token, tok.eos_token))
    from transformers import PreTrainedTokenizerFast
    l3 = PreTrainedTokenizerFast(tokenizer_file=os.path.join(ROOT, "tests", "fixtures", "tokenizer",
                                                             "llama3_regex_tokenizer.json"))
    todo.append(("llama3", LLAMA3_TEMPLATE, l3, "tests/fixtures/tokenizer/llama3_regex_tokenizer.json",
                 "<|begin_of_text|>", "<|end_of_text|>"))
    todo.append(("phi3", PHI3_TEMPLATE, None, None, "<s>", "<|endoftext|>"))

    for name, tpl, tok, src, bos, eos in todo:
        cases = []
        for cname, msgs in CONVERSATIONS:
            for gen in (False, True):
                if gen and msgs[-1]["role"] == "assistant":
                    continue  # a generation prompt follows a user turn
                if not gen and msgs[-1]["role"] != "assistant":
                    continue
                text = render(tpl, msgs, gen, bos, eos)
                spans = spans_of(name, tpl, msgs, text, bos, eos)
                case = {"name": cname, "messages": msgs, "add_generation_prompt": gen, "text": text,
                        "spans": [[byte_off(text, a), byte_off(text, b)] for a, b in spans]}
                if tok is not None:
                    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
                    case["ids"] = enc["input_ids"]
                    case["mask"] = [int(any(s < b and a < e for a, b in spans)) for s, e in enc["offset_mapping"]]
                cases.append(case)
        out = {"comment": "made by tests/ref/make_chat_fixtures.py (transformers render_jinja_template; "
                          "spans in UTF-8 bytes: assistant content as the template writes it + end marker)",
               "template": tpl, "bos_token": bos, "eos_token": eos, "tokenizer": src, "cases": cases}
        with open(os.path.join(FIX, f"{name}.json"), "w", encoding="utf-8", newline="\n") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"{name}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
