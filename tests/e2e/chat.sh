#!/bin/bash
# End-to-end checks of chat formats (io/chat.h): instruction data as
# "messages" / ShareGPT conversations, trained a few steps on SmolLM2 in its
# own ChatML template with the loss on the assistant turns; `generate --chat`
# stopping at the end of the assistant's turn; bad records as one error line
# naming the file, line and field (exit 1); bad flags (exit 2); a model
# without a template (stories260K) falling back to the Alpaca format.
source "$(dirname "$0")/lib/common.bash"
CHAT=$SRC/tests/fixtures/data/chat.jsonl
M=${LORAC_CACHE:-$SRC/.cache}/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
S=$DATA/stories260K/hf

# bad records: one line "<file>:<line>: <field>: <problem>; hint: ...", exit 1 (stories260K loads fast)
bad_rec() { # NAME LINE2 PATTERN: a good record on line 1, LINE2 on line 2
    printf '%s\n%s\n' "$(head -n 1 "$CHAT")" "$2" >"$T/$1.jsonl"
    expect 1 "$1.jsonl:2: $3" -- "$BIN" train --model "$S" --task instruct --data "$T/$1.jsonl" --max-steps 1
}
bad_rec not_list '{"messages": "Hi"}' '"messages" is a string, not a list; hint: records look like'
bad_rec empty '{"messages": []}' '"messages" is empty'
bad_rec role '{"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}' \
    '"messages"\[1\]: role "bot" is not system, user or assistant'
bad_rec content '{"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "b"}]}' \
    '"messages"\[0\].content is a number, not a string'
bad_rec late_system '{"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}' \
    '"messages"\[1\]: a system message after the first'
bad_rec no_answer '{"messages": [{"role": "user", "content": "a"}]}' '"messages" has no assistant message'
bad_rec sharegpt '{"conversations": [{"from": "human", "value": "a"}, {"from": "robot", "value": "b"}]}' \
    '"conversations"\[1\]: role "robot"'
expect 2 "--chat-format 'vicuna': expected auto, chatml" -- \
    "$BIN" train --model "$S" --task instruct --data "$CHAT" --chat-format vicuna --max-steps 1
expect 2 "--system needs --chat" -- "$BIN" generate --model "$S" --prompt hi --system x

# a model without a template: messages in lorac's Alpaca format, EOS ending each answer
"$BIN" train --model "$S" --task instruct --data "$CHAT" --val "$CHAT" --max-steps 2 --batch 2 --json \
    >"$T/s.json" 2>"$T/s.err"
if [ $? -eq 0 ] && grep -q "^chat format: alpaca (the model has no chat template)" "$T/s.err"; then ok; else
    bad "stories260K on chat data"; cat "$T/s.err" >&2; fi
# gemma's turns must alternate: a record that does not is named (after the data summary), exit 1
printf '%s\n' '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}' >"$T/twice.jsonl"
"$BIN" train --model "$S" --task instruct --data "$T/twice.jsonl" --val "$T/twice.jsonl" --chat-format gemma \
    --max-steps 1 >/dev/null 2>"$T/g.err"
rc=$?
if [ $rc -eq 1 ] && tail -n 1 "$T/g.err" | grep -q "twice.jsonl:1: messages\[1\]: role \"user\", but the gemma format"; then
    ok; else bad "gemma alternation: exit $rc"; tail -n 2 "$T/g.err" >&2; fi

if [ ! -f "$M" ]; then
    echo "chat: SmolLM2 GGUF not in the model cache: SmolLM2 runs skipped"
    summary chat
    exit
fi
# SmolLM2 in its own template: a few steps, then generate --chat with the adapter
printf '%s\n' "$(head -n 1 "$CHAT")" >"$T/val.jsonl"
"$BIN" train --model "$M" --task instruct --data "$CHAT" --val "$T/val.jsonl" --eval-splits val --max-steps 2 \
    --batch 3 --lr 1e-4 --max-len 96 --threads 2 --json --out "$T/run" >"$T/m.json" 2>"$T/m.err"
rc=$?
loss=$(python3 -c 'import json,sys,math; v=json.load(open(sys.argv[1]))["val_loss"]; print(math.isfinite(v) and v > 0)' \
    "$T/m.json" 2>/dev/null)
if [ $rc -eq 0 ] && [ "$loss" = True ] && [ -f "$T/run/adapter_model.safetensors" ] &&
    grep -q '^chat format: chatml (.*tokenizer.chat_template); default system message "You are a helpful AI' "$T/m.err"
then ok; else bad "SmolLM2 chat training: exit $rc, val loss ok '$loss'"; tail -n 3 "$T/m.err" >&2; fi
# the answer ends at <|im_end|> (id 2, not printed) well before --max-new. With fp32 activations: on the
# default int8 road (the prompt's rows too since branch qprompt) this 135M model repeats "Paris" past 40 tokens
LORAC_QDOT=f32 "$BIN" generate --model "$M" --adapter "$T/run" --chat --prompt "What is the capital of France?" --max-new 40 \
    --threads 2 --ids >"$T/gen.ids" 2>"$T/gen.err"
rc=$?
n=$(wc -w <"$T/gen.ids")
if [ $rc -eq 0 ] && [ "$n" -gt 0 ] && [ "$n" -lt 40 ] && ! grep -qw 2 "$T/gen.ids"; then ok; else
    bad "generate --chat: exit $rc, $n ids: $(cat "$T/gen.ids")"; cat "$T/gen.err" >&2; fi
# --chat-format alpaca keeps lorac's old layout for Alpaca records on a model with a template
"$BIN" train --model "$M" --task instruct --data "$SRC/tests/fixtures/data/instructions.jsonl" --chat-format alpaca \
    --val "$SRC/tests/fixtures/data/instructions.jsonl" --eval-splits val --max-steps 1 --batch 2 --threads 2 \
    >/dev/null 2>"$T/a.err"
if [ $? -eq 0 ] && grep -q "^chat format: alpaca (--chat-format)" "$T/a.err"; then ok; else
    bad "--chat-format alpaca"; tail -n 3 "$T/a.err" >&2; fi
summary chat
