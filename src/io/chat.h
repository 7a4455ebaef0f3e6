/* chat.h - chat formats: how a conversation (system / user / assistant
 * messages) becomes the text an instruction-tuned model was trained on, which
 * bytes of that text the loss trains on, and where a generated answer ends.
 *
 * A model says how it wants to be prompted in a Jinja chat template (GGUF
 * `tokenizer.chat_template`, or `chat_template` in a Hugging Face directory's
 * tokenizer_config.json / chat_template.jinja). lorac does not run Jinja:
 * like llama.cpp's llm_chat_detect_template it recognises the template's
 * family by its markers and writes that family's format itself:
 *
 *   chatml   <|im_start|>role\n content <|im_end|>\n        (Qwen, SmolLM, ...)
 *   llama3   <|start_header_id|>role<|end_header_id|>\n\n content <|eot_id|>
 *   gemma    <start_of_turn>user|model\n content <end_of_turn>\n, the system
 *            message folded into the first user turn
 *   phi3     <|role|>\n content <|end|>\n
 *   mistral  [INST] user [/INST]assistant</s>
 *   llama2   <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s>
 *   alpaca   lorac's default when a model has no template: the Alpaca prompt
 *            of LLMs-from-scratch ch. 7, "### Instruction:" / "### Response:",
 *            each answer ended by the EOS token
 *
 * The details a template adds are read from its text where they vary: the
 * default system message it writes when a conversation has none (Qwen2.5:
 * "You are Qwen, created by Alibaba Cloud. ..."; SmolLM2 its own), whether
 * it starts with bos_token, whether it ends with eos_token (Phi-3). The
 * renderings equal transformers' apply_chat_template for the templates in
 * tests/fixtures/chat (made by tests/ref/make_chat_fixtures.py).
 *
 * What the loss trains on: each assistant message's content as the template
 * writes it (trimmed where the template trims) and the end-of-turn marker
 * that closes it (<|im_end|>, <|eot_id|>, <end_of_turn>, <|end|>, EOS), so
 * the model learns to stop; not the role header before it nor the newline
 * after it (the spans TRL's assistant_only_loss masks with templates that
 * carry {% generation %}).
 *
 * Ownership: strings and arrays returned through `out` arguments are
 * malloc'd and owned by the caller (lorac_chat_text_free,
 * lorac_chat_msgs_free, free). */
#ifndef LORAC_IO_CHAT_H
#define LORAC_IO_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "io/gguf.h"
#include "io/tokenizer.h"

typedef enum lorac_chat_family {
    LORAC_CHAT_ALPACA = 0,
    LORAC_CHAT_CHATML,
    LORAC_CHAT_LLAMA3,
    LORAC_CHAT_GEMMA,
    LORAC_CHAT_PHI3,
    LORAC_CHAT_MISTRAL,
    LORAC_CHAT_LLAMA2,
    LORAC_CHAT_N_FAMILIES
} lorac_chat_family;

/* One message. role is "system" (first message only), "user" or "assistant". */
typedef struct lorac_chat_msg {
    char *role;
    char *content;
} lorac_chat_msg;

typedef struct lorac_chat_format {
    lorac_chat_family family;
    int from_template;          /* 1: read from a template; 0: named or the default */
    int bos;                    /* the text starts with bos_token (llama2: every [INST]) */
    int eos_after;              /* eos_token after the last turn unless a generation prompt follows (Phi-3) */
    char default_system[1024];  /* the system message written when a conversation has none; "" = none */
    char bos_token[64];         /* the tokenizer's BOS / EOS texts ("" when it has none), */
    char eos_token[64];         /* filled by lorac_chat_set_tokens */
} lorac_chat_format;

/* A rendered conversation: the text and the byte ranges the loss trains on. */
typedef struct lorac_chat_text {
    char *text;          /* NUL-terminated */
    size_t len;
    size_t (*span)[2];   /* [n_span] [start, end) of each assistant turn's trained bytes */
    int n_span;
} lorac_chat_text;

/* "chatml", "llama3", ... (the --chat-format names); NULL for a bad value. */
const char *lorac_chat_family_name(lorac_chat_family f);
/* The family of a --chat-format name; LORAC_ERR_ARG listing the names. */
lorac_status lorac_chat_family_parse(const char *name, lorac_chat_family *out);

/* The model's chat template text: from g (GGUF tokenizer.chat_template)
 * when g is given, else from the directory `dir` (or the directory of a
 * file): chat_template.jinja, then tokenizer_config.json "chat_template"
 * (a string, or a list of {name, template} of which "default" is used).
 * *tpl = NULL (and LORAC_OK) when the model has none; `where` (size n) gets
 * the source's name for messages. */
lorac_status lorac_chat_template_read(const char *dir, const lorac_gguf *g, char **tpl, char *where, size_t n);

/* The family and details of a template (see above). A template of no
 * family lorac knows is LORAC_ERR_UNSUPPORTED naming `where`, with the
 * hint to pick a format with --chat-format. */
lorac_status lorac_chat_detect(const char *tpl, const char *where, lorac_chat_format *f);

/* The one place that picks a model's chat format (lorac train / eval /
 * generate --chat-format through lorac_api_chat_format, and lorac serve).
 * name: a --chat-format family, or "auto" / NULL for the model's own. The
 * template is read from tok_path when a tokenizer was given apart from the
 * model (a directory, or a .gguf file whose metadata holds it), else from
 * the model (model_gguf when it is a GGUF, else model_path's directory).
 *  - auto: the template's family (a template of no known family is
 *    LORAC_ERR_UNSUPPORTED, see lorac_chat_detect); no template: alpaca;
 *  - a name: the template's details when it is of that family, else the
 *    family's reference format.
 * Then the tokenizer's BOS / EOS texts (lorac_chat_set_tokens). `where`
 * (size n_where) names the source for messages. */
lorac_status lorac_chat_format_pick(const char *tok_path, const char *model_path, const lorac_gguf *model_gguf,
                                    const lorac_tokenizer *tok, const char *name, lorac_chat_format *f, char *where,
                                    size_t n_where);

/* The family's format as its reference template writes it, with no default
 * system message (what --chat-format NAME gives for a model without a
 * template of that family). Call lorac_chat_set_tokens next. */
void lorac_chat_format_init(lorac_chat_format *f, lorac_chat_family family);

/* Take the BOS / EOS texts from the tokenizer. For alpaca, also whether BOS
 * is written: when the tokenizer adds one (as lorac always did). */
void lorac_chat_set_tokens(lorac_chat_format *f, const lorac_tokenizer *tok);

/* Whether m[0..n) can be rendered: LORAC_ERR_DATA naming the message
 * ("<what>[i]") and a hint for no message, a role other than system / user /
 * assistant, a system message that is not the first, and, when f is given
 * and is gemma / mistral / llama2 (whose templates raise), roles that do not
 * alternate user, assistant, user, ... */
lorac_status lorac_chat_check(const lorac_chat_format *f, const lorac_chat_msg *m, int n, const char *what);

/* Render messages m[0..n) (checked first: lorac_chat_check, what =
 * "messages"). add_generation_prompt: end with the header of an assistant
 * turn to be generated. */
lorac_status lorac_chat_render(const lorac_chat_format *f, const lorac_chat_msg *m, int n, int add_generation_prompt,
                               lorac_chat_text *out);
void lorac_chat_text_free(lorac_chat_text *t);

/* Tokenize a rendered text whole (no added specials: the format wrote any
 * BOS) and mark the tokens of its spans: mask[i] = 1 when token i overlaps a
 * span (a token across a span's edge counts, as HF's assistant mask does).
 * *ids and *mask have *n entries, malloc'd. */
lorac_status lorac_chat_encode(const lorac_tokenizer *tok, const lorac_chat_text *t, int **ids, uint8_t **mask, int *n);

/* The token that ends an assistant turn (<|im_end|>, <|eot_id|>,
 * <end_of_turn>, <|end|>), or the EOS for mistral / llama2 / alpaca; -1
 * when the tokenizer has none. Generation stops there. */
int lorac_chat_end_of_turn(const lorac_chat_format *f, const lorac_tokenizer *tok);

/* Deep copy of m[0..n) into *out (NULL when n == 0). */
lorac_status lorac_chat_msgs_copy(const lorac_chat_msg *m, int n, lorac_chat_msg **out);
void lorac_chat_msgs_free(lorac_chat_msg *m, int n);

#endif
