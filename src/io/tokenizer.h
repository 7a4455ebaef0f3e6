/* tokenizer.h - text <-> token ids, with the same ids as Hugging Face.
 *
 * Supported kinds (lorac_tokenizer_kind):
 *   "gpt2-bpe"           byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2, ...):
 *                        vocab.json + merges.txt, tokenizer.json (ByteLevel,
 *                        regex Split pre-tokenizers), or GGUF
 *                        tokenizer.ggml.model = "gpt2" (with the
 *                        tokenizer.ggml.pre names tok_gguf.c lists).
 *   "sentencepiece-bpe"  SentencePiece BPE with byte fallback (Llama 2,
 *                        stories*, Gemma): tokenizer.model, a Llama-style
 *                        tokenizer.json, or GGUF tokenizer.ggml.model = "llama".
 *   "wordpiece"          BERT WordPiece (BERT, DistilBERT, MiniLM): vocab.txt
 *                        (+ tokenizer_config.json's do_lower_case) or a
 *                        tokenizer.json with model.type "WordPiece"; add_special
 *                        gives [CLS] ... [SEP] (BertTokenizerFast).
 *
 * What "the same ids" means, per source:
 *   tokenizer.json, vocab.json+merges.txt  HF `tokenizers` (the fast tokenizer).
 *   tokenizer.model   sentencepiece with the file's own normalizer settings
 *                     (add_dummy_prefix, remove_extra_whitespaces), run on
 *                     each stretch of text between special tokens, as HF's
 *                     slow legacy LlamaTokenizer does.
 *   GGUF              llama.cpp's reading of the metadata, which for these
 *                     vocabularies equals HF `tokenizers` on the model's
 *                     original tokenizer.json.
 * Text is any bytes: invalid UTF-8 is first replaced by U+FFFD, one per
 * maximal ill-formed subsequence (Python's bytes.decode("utf-8", "replace"),
 * which is how such bytes reach an HF tokenizer). Added / special tokens
 * written in the text ("<|endoftext|>", "<s>") become single ids.
 *
 * Ownership: lorac_tokenizer_load / _from_gguf return a tokenizer the caller
 * frees with lorac_tokenizer_free (NULL is fine). It keeps no reference to the
 * GGUF it was built from. Arrays and strings returned through `out`
 * arguments are malloc'd and owned by the caller. A loaded tokenizer is
 * read-only, so one may be shared between threads. */
#ifndef LORAC_IO_TOKENIZER_H
#define LORAC_IO_TOKENIZER_H

#include <stddef.h>

#include "io/gguf.h"
#include "lorac.h"

typedef struct lorac_tokenizer lorac_tokenizer;

/* path: a directory (tries tokenizer.json, then vocab.json+merges.txt, then tokenizer.model, then vocab.txt) or one of those files. */
lorac_status lorac_tokenizer_load(const char *path, lorac_tokenizer **out);
lorac_status lorac_tokenizer_from_gguf(const lorac_gguf *g, lorac_tokenizer **out);
void lorac_tokenizer_free(lorac_tokenizer *t);

/* Encode `len` bytes of text (any bytes; invalid UTF-8 handled like HF). add_special: as HF's add_special_tokens=True (Llama/SentencePiece: prepend BOS if the tokenizer config says add_bos; GPT-2: nothing). Special/added tokens written in the text (e.g. "<|im_start|>", "<|endoftext|>") are recognised as single tokens like HF does. *ids is malloc'd (caller frees). */
lorac_status lorac_tokenizer_encode(const lorac_tokenizer *t, const char *text, size_t len, int add_special, int **ids, int *n);
/* Decode to a malloc'd NUL-terminated string (skip_special: drop special tokens like HF's skip_special_tokens). */
lorac_status lorac_tokenizer_decode(const lorac_tokenizer *t, const int *ids, int n, int skip_special, char **text, size_t *len);
/* Streaming decode of one token given the previous one (for generation; SentencePiece strips the leading space after BOS). Returns bytes (may be a partial UTF-8 sequence) in buf, length in *len. */
lorac_status lorac_tokenizer_decode_piece(const lorac_tokenizer *t, int prev, int id, char *buf, size_t cap, size_t *len);
int lorac_tokenizer_vocab_size(const lorac_tokenizer *t);
int lorac_tokenizer_bos(const lorac_tokenizer *t); /* -1 if none */
int lorac_tokenizer_eos(const lorac_tokenizer *t);
int lorac_tokenizer_pad(const lorac_tokenizer *t); /* -1 if none */
int lorac_tokenizer_find(const lorac_tokenizer *t, const char *piece); /* id of an exact piece, or -1 */
const char *lorac_tokenizer_kind(const lorac_tokenizer *t); /* "gpt2-bpe", "sentencepiece-bpe", "wordpiece" */

/* ---- extras ---- */
/* The vocabulary entry of `id` as stored (e.g. "Ġthe", "▁the", "<0x0A>"),
 * owned by t; NULL when id is out of range. *len gets its length (may be NULL). */
const char *lorac_tokenizer_piece(const lorac_tokenizer *t, int id, size_t *len);
/* 1 if `id` is a special token (dropped by skip_special), else 0. */
int lorac_tokenizer_is_special(const lorac_tokenizer *t, int id);
/* Whether add_special prepends BOS / appends EOS. */
int lorac_tokenizer_adds_bos(const lorac_tokenizer *t);
int lorac_tokenizer_adds_eos(const lorac_tokenizer *t);

#endif
