/* lorac.h - the public API of liblorac: LoRA / QLoRA fine-tuning of
 * pretrained transformers in C. This header is the whole public surface:
 * an application includes it and links liblorac (pkg-config lorac, or CMake
 * find_package(lorac) -> lorac::lorac); nothing else under src/ is public.
 *
 * Conventions
 *  - One prefix: lorac_. Every fallible call returns lorac_status; on failure
 *    lorac_last_error() holds one line: what went wrong, where, and a hint.
 *  - Ownership: a *_create / *_open / *_load returns an object the caller
 *    owns and releases with the matching *_destroy / *_close / *_free, each of
 *    which accepts NULL. Buffers the library returns through `T **out`
 *    (token ids, text) are malloc'd and released with lorac_free.
 *  - Options structs start with `size_t size`, set by their *_init function
 *    (sizeof the struct this header declares): a size the library does not
 *    know is LORAC_ERR_ARG, so a program built against another version of
 *    this header is told, never misread.
 *  - The library never prints and never exits; progress goes through the
 *    optional log callback and the per-call callbacks.
 *  - Threads: a handle is not internally locked. Calls on *different*
 *    handles may run on different threads at once; calls on one handle (and
 *    on a tokenizer borrowed from it) must not overlap, unless the call is
 *    marked "[read-only]" below, which may overlap with other read-only
 *    calls on the same handle; calls marked "[one thread per llm]" take the
 *    handle for themselves; "[any thread]" calls touch no shared state.
 *    The error message is per thread.
 *    lorac_set_threads and lorac_set_log are process-wide: call them before
 *    starting threads that use the library.
 *  - After lorac_llm_close(llm) every use of llm, of its tokenizer
 *    (lorac_llm_tok) and of strings it returned (lorac_llm_label, module
 *    names) is invalid (undefined behaviour, not checked). NULL handles are
 *    checked: every call given a NULL handle returns LORAC_ERR_ARG (or 0 /
 *    NULL / -1 for the calls that return values, as documented).
 *
 * Names: internal code (src/) uses lorac_model, lorac_tokenizer,
 * lorac_adapter*, lorac_train*, lorac_generate; the public API lives in
 * namespaces no internal name uses - lorac_llm* (a model with its tokenizer
 * and adapters), lorac_tok* (a tokenizer), lorac_chat_message,
 * lorac_train_config / lorac_data_config / lorac_gen_params, lorac_data_*
 * (a loaded data set), lorac_ranks* (data-parallel ranks), lorac_checkpoint_*,
 * lorac_fit_report - so the two never
 * collide and the shared library exports exactly the names declared here.
 */
#ifndef LORAC_H
#define LORAC_H

#include <signal.h> /* sig_atomic_t: lorac_train_config.stop */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LORAC_VERSION "0.1.0"
#define LORAC_VERSION_MAJOR 0
#define LORAC_VERSION_MINOR 1
#define LORAC_VERSION_PATCH 0

/* LORAC_API marks what liblorac.so exports (src/api/lorac.map lists the
 * same names; every other symbol is local). Nothing to define when using
 * the library. */
#if defined(LORAC_BUILDING_LIBRARY) && defined(__GNUC__)
#define LORAC_API __attribute__((visibility("default")))
#else
#define LORAC_API
#endif

typedef enum lorac_status {
    LORAC_OK = 0,
    LORAC_ERR_IO = 1,          /* file missing, unreadable, unwritable */
    LORAC_ERR_FORMAT = 2,      /* a file is malformed or truncated */
    LORAC_ERR_SHAPE = 3,       /* tensor shape disagrees with config / expectation */
    LORAC_ERR_ARG = 4,         /* bad argument or option value */
    LORAC_ERR_NOMEM = 5,       /* allocation failed or would be absurd */
    LORAC_ERR_UNSUPPORTED = 6, /* valid input lorac cannot handle (yet) */
    LORAC_ERR_NUMERIC = 7,     /* NaN / Inf in loss or gradients */
    LORAC_ERR_DATA = 8,        /* a bad data row */
    LORAC_ERR_COMM = 9,        /* another rank of a distributed run, or the network between them, failed */
    LORAC_ERR_CANCELLED = 10,  /* a callback asked to stop (training cancelled) */
} lorac_status;

/* The message of the last failure on this thread ("no error" if none). */
LORAC_API const char *lorac_last_error(void); /* [any thread] */
LORAC_API void lorac_clear_error(void);
/* A short name for a status ("bad file format", ...). */
LORAC_API const char *lorac_status_name(lorac_status st);

/* Log callback: level 0 = info, 1 = warning. NULL restores the default
 * (silence). `user` is passed back unchanged. */
typedef void (*lorac_log_fn)(int level, const char *msg, void *user);
LORAC_API void lorac_set_log(lorac_log_fn fn, void *user);

/* The library's version string ("0.1.0"): that of the linked library,
 * which may differ from LORAC_VERSION of the header a program was built
 * with. [any thread] */
LORAC_API const char *lorac_version(void);

/* Threads for the library's OpenMP loops and BLAS (process-wide). n <= 0:
 * OMP_NUM_THREADS if set, else every online core. */
LORAC_API void lorac_set_threads(int n);

/* Release a buffer the library returned (ids, text). NULL is fine. [any thread] */
LORAC_API void lorac_free(void *p);

/* ======================================================================
 * Models: lorac_llm = a base model, its tokenizer and its adapters
 * ====================================================================== */

typedef struct lorac_llm lorac_llm;
typedef struct lorac_tok lorac_tok;

/* How the frozen base's block Linears are held.
 *
 * LORAC_BASE_AUTO (lorac_llm_opts_init's default) picks by the file: a .gguf
 * opens as LORAC_BASE_GGUF, an HF directory as LORAC_BASE_FP32. Decoding a
 * GGUF then reads its own 4- to 8-bit blocks (dequantized on the fly, the
 * values exact) instead of an fp32 copy 4 to 8 times larger: a decoding step
 * streams every weight once, so that is what sets its speed. Under AUTO /
 * GGUF an untied LM head in a block format (output.weight) is kept in its
 * blocks too; a tied head is the token embedding, kept as the embedding is.
 * lorac_llm_get_info says what was chosen. Training LoRA over such a base is
 * QLoRA (as LORAC_BASE_GGUF always was); merging, saving the whole model and
 * training base weights (full, last-layers) need LORAC_BASE_FP32. */
typedef enum lorac_base_format {
    LORAC_BASE_FP32 = 0,  /* as loaded, fp32 (a .gguf: dequantized at load) */
    LORAC_BASE_BF16 = 1,  /* rounded to bf16: half the memory, bf16 products with fp32 accumulation */
    LORAC_BASE_NF4 = 2,   /* QLoRA: bitsandbytes NF4, quantized while loading */
    LORAC_BASE_GGUF = 3,  /* a .gguf's own GGML blocks (Q4_0 .. Q6_K, IQ4_*) kept, the untied LM head's too */
    LORAC_BASE_AUTO = 4,  /* default: GGUF for a .gguf file, FP32 for a Hugging Face directory */
} lorac_base_format;

typedef struct lorac_llm_opts {
    size_t size;            /* sizeof(lorac_llm_opts), set by lorac_llm_opts_init */
    const char *tokenizer;  /* tokenizer file or directory; NULL: the model's own */
    lorac_base_format base; /* default LORAC_BASE_AUTO */
    int embed_fp32;         /* NF4 / GGUF bases: keep the token embedding fp32 (bitsandbytes' way); default 0 */
    int threads;            /* > 0: lorac_set_threads(threads) first; default 0 (leave as is) */
    int no_tokenizer;       /* 1: read no tokenizer (export, merge); lorac_llm_tok then returns NULL */
} lorac_llm_opts;

LORAC_API void lorac_llm_opts_init(lorac_llm_opts *o);

/* Open a model: a Hugging Face directory (config.json + *.safetensors) or a
 * .gguf file, with its tokenizer. o may be NULL (defaults). On failure *out
 * is NULL. [any thread; o->threads > 0 sets the process-wide threads] */
LORAC_API lorac_status lorac_llm_open(const char *path, const lorac_llm_opts *o, lorac_llm **out);
/* Free the model, its tokenizer and every adapter. NULL is fine. Every
 * later use of llm, its tokenizer or strings it returned is invalid.
 * [one thread per llm: no other call on it may be running] */
LORAC_API void lorac_llm_close(lorac_llm *llm);

/* What a model holds. [read-only] */
typedef struct lorac_llm_info {
    size_t size;             /* sizeof(lorac_llm_info): set it before the call */
    char arch[32];           /* "llama", "gpt2", "bert", "qwen2", "gemma3", ... */
    int n_layers, dim, n_heads, n_kv_heads, vocab_size, n_ctx;
    int n_classes;           /* classification head's classes, 0 = none */
    int64_t params_trainable, params_all;
    int n_modules;           /* Linear modules (lorac_llm_module) */
    int n_adapters;          /* adapters loaded by name (lorac_llm_adapter_load) */
    char active_adapter[64]; /* "" = none (or "default": one applied with lorac_llm_adapter_apply / trained) */
    size_t adapter_bytes;    /* bytes held by named adapters */
    /* the frozen base as held (LORAC_BASE_BF16 / _NF4 / _GGUF) */
    int quantized_linears;   /* Linears held as bf16 / NF4 / GGML blocks */
    char formats[96];        /* their formats, "+"-joined ("nf4", "q4_1+q8_0"); "" = none */
    char embed_format[16];   /* the token embedding's format ("fp32" unless quantized) */
    int64_t base_params, quantized_params; /* every base weight / the quantized Linears' */
    double base_bytes, quantized_bytes;    /* their storage */
    int fallback;            /* LORAC_BASE_GGUF: Linears that could not keep the file's format (went to NF4) */
    char fallback_note[256]; /* ... and why, for the first */
    int bf16_native;         /* 1: bf16 products run natively (oneDNN, AVX512-BF16); 0: widened to fp32 */
    char path[1024];         /* where it was read from (lorac_llm_create: the config.json) */
    int head_dim, ffn_dim;   /* attention head size, MLP hidden size */
    int tied;                /* 1: the LM head is the token embedding */
    lorac_base_format base;  /* the base as opened (LORAC_BASE_AUTO resolved: GGUF or FP32) */
    char head_format[16];    /* the LM head's weight format ("fp32", "q6_k"; a tied head: the embedding's; "" = none) */
} lorac_llm_info;
LORAC_API lorac_status lorac_llm_get_info(const lorac_llm *llm, lorac_llm_info *info);

/* One Linear module: its full name ("model.layers.0.self_attn.q_proj"),
 * shape and whether an adapter (LoRA rank r > 0) sits on it. name stays
 * valid until lorac_llm_close. [read-only] */
typedef struct lorac_module_info {
    const char *name;
    int in, out;
    int lora_r;   /* 0: no LoRA on it now */
    int trainable;/* its weight is trained in full */
} lorac_module_info;
LORAC_API lorac_status lorac_llm_module(const lorac_llm *llm, int i, lorac_module_info *out);

/* ======================================================================
 * Tokenizers
 * ====================================================================== */

/* The model's tokenizer, borrowed: valid until lorac_llm_close; never pass
 * it to lorac_tok_close (which ignores it). NULL for a NULL llm or one opened
 * with no_tokenizer. [read-only] */
LORAC_API const lorac_tok *lorac_llm_tok(const lorac_llm *llm);
/* A tokenizer alone (no weights read): tokenizer.json, vocab.json +
 * merges.txt, tokenizer.model, vocab.txt, a directory holding one, or a
 * .gguf's metadata. [any thread] */
LORAC_API lorac_status lorac_tok_open(const char *path, lorac_tok **out);
LORAC_API void lorac_tok_close(lorac_tok *t); /* [one thread per tok] */

/* The lorac_tok_* calls below are [read-only]: any number of threads may
 * encode / decode with one tokenizer at once. */
/* text[0..len) -> ids (*ids from malloc: lorac_free). add_special = 1 adds
 * the model's special tokens (BOS ...) as HF's add_special_tokens=True;
 * special-token strings in the text ("<|im_start|>") map to their ids. */
LORAC_API lorac_status lorac_tok_encode(const lorac_tok *t, const char *text, size_t len, int add_special, int **ids,
                                        int *n);
/* ids -> text (*text NUL-terminated, from malloc: lorac_free); *len may be NULL. */
LORAC_API lorac_status lorac_tok_decode(const lorac_tok *t, const int *ids, int n, int skip_special, char **text,
                                        size_t *len);
/* The bytes of one token following `prev` (streaming; a piece may end in
 * a partial UTF-8 sequence). */
LORAC_API lorac_status lorac_tok_decode_piece(const lorac_tok *t, int prev, int id, char *buf, size_t cap, size_t *len);
LORAC_API int lorac_tok_vocab_size(const lorac_tok *t); /* 0 for NULL */
LORAC_API int lorac_tok_bos(const lorac_tok *t);        /* -1: none */
LORAC_API int lorac_tok_eos(const lorac_tok *t);        /* -1: none */
LORAC_API int lorac_tok_find(const lorac_tok *t, const char *piece); /* id of an exact vocabulary piece, -1: none */

/* Chat templates: a conversation written in the model's chat format.
 * format: NULL or "auto" (the template of the tokenizer / model, else
 * alpaca) or a family name: chatml, llama3, gemma, phi3, mistral, llama2,
 * alpaca. add_generation_prompt = 1 ends with the assistant's header.
 * *text from malloc (lorac_free); text NULL: only info. info may be NULL.
 * [read-only] */
typedef struct lorac_chat_message {
    const char *role;    /* "system" (first only), "user", "assistant" */
    const char *content;
} lorac_chat_message;
typedef struct lorac_chat_info {
    char family[16];         /* the format used */
    char source[1200];       /* where it came from: the template's file, else "named format" or
                                "the model has no chat template" */
    int from_template;       /* 1: read from the model's (or tokenizer's) template */
    char default_system[1024];/* the template's default system message ("" if none) */
    int end_of_turn;         /* the token ending an assistant turn (stop there), -1 if none */
    int writes_bos;          /* 1: the text starts with BOS itself (encode with add_special 0) */
} lorac_chat_info;
LORAC_API lorac_status lorac_llm_chat(const lorac_llm *llm, const char *format, const lorac_chat_message *msgs, int n,
                                      int add_generation_prompt, char **text, lorac_chat_info *info);

/* ======================================================================
 * Adapters
 *
 * Two ways to hold adapters, as PEFT has:
 *  - lorac_llm_adapter_apply: one PEFT adapter put straight onto the base,
 *    anything PEFT saves (biases, modules_to_save); it cannot be switched
 *    off or unloaded, only merged or saved. A trained adapter is held so too.
 *  - lorac_llm_adapter_load: named adapters over one base (load_adapter /
 *    set_adapter / add_weighted_adapter / delete_adapter); switching is a
 *    pointer walk. Refused (with a hint): adapters that change base tensors
 *    (bias all / lora_only, modules_to_save other than the head).
 * An llm holds either one applied adapter or any number of named ones.
 * ====================================================================== */

/* Load the PEFT adapter directory dir (adapter_config.json +
 * adapter_model.safetensors) under name (not activated). An adapter for
 * another base (other module shapes / names) is refused with a message
 * naming what does not fit. [one thread per llm] */
LORAC_API lorac_status lorac_llm_adapter_load(lorac_llm *llm, const char *name, const char *dir);
/* Free a named adapter; when it was active the base alone is active then.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_adapter_unload(lorac_llm *llm, const char *name);
/* Make `name` the active adapter; NULL or "none": the base alone.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_adapter_use(lorac_llm *llm, const char *name);
/* A new named adapter from n loaded ones with weights, as PEFT's
 * add_weighted_adapter; type "linear" (same r) or "cat" (ranks add up).
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_adapter_combine(lorac_llm *llm, const char *name, const char *const *names,
                                                 const float *weights, int n, const char *type);
/* Apply one adapter directly (see above); refused when the llm holds
 * adapters already. [one thread per llm] */
LORAC_API lorac_status lorac_llm_adapter_apply(lorac_llm *llm, const char *dir);
/* Save the adapter the model holds (trained or applied) as a PEFT adapter
 * directory (created if missing; files written to a temporary name, then
 * renamed). Refused for named adapters (they are already on disk).
 * [read-only] */
LORAC_API lorac_status lorac_llm_adapter_save(const lorac_llm *llm, const char *dir);
/* Merge the active adapter into the base weights (W += scale B A), then
 * unload every adapter (PEFT's merge_and_unload). Over a quantized base the
 * merge is refused (LORAC_ERR_UNSUPPORTED): open the base in fp32.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_merge(lorac_llm *llm);
/* Write the model's weights (merged) as a Hugging Face checkpoint directory
 * (config.json, model.safetensors, the tokenizer files); merges first.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_save(lorac_llm *llm, const char *dir);

/* Export the PEFT adapter in adapter_dir as a llama.cpp LoRA GGUF at path
 * (over this llm's base, which holds no adapter; the adapter stays applied
 * afterwards). f16 = 1: F16 tensors. info may be NULL. [one thread per llm] */
typedef struct lorac_llm_export_info {
    int n_tensors, n_modules, r, n_fused;
    float alpha;
    char arch[32];
    uint64_t bytes;
} lorac_llm_export_info;
LORAC_API lorac_status lorac_llm_export_gguf(lorac_llm *llm, const char *adapter_dir, const char *path, int f16,
                                             lorac_llm_export_info *info);

/* ---- Inspecting, evaluating, merging (lorac info / modules / eval / merge) --
 * What the CLI's info, modules, eval and merge are built on. Besides
 * lorac_llm*, one more public namespace that no internal name uses:
 * lorac_lorafile* (a llama.cpp LoRA GGUF). Evaluation sets are lorac_data
 * (Training and evaluation, below), scored by lorac_llm_score. */

/* A model of config.json's shapes with random weights and no tokenizer
 * (nothing else is read): module trees and parameter counts without the
 * checkpoint. lorac_llm_close frees it. [any thread] */
LORAC_API lorac_status lorac_llm_create(const char *config_json, lorac_llm **out);

/* Add a fresh classification head of n_classes (>= 1) on the last token
 * ("score"; an encoder's classifier), as lorac_llm_train adds one: init
 * "hf" (NULL; transformers' N(0, initializer_range), decoders' score
 * without bias) or "torch" (nn.Linear with bias); a head read from the
 * checkpoint with n_classes is kept. Refused once adapters are held.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_add_head(lorac_llm *llm, int n_classes, const char *init, uint64_t seed);

/* The parameters in the order PEFT's named_parameters lists them: every
 * base weight, each followed by the adapter tensors that sit on it
 * (lora_A, lora_B, a DoRA magnitude; lora_embedding_A / _B on the token
 * embedding). Count with lorac_llm_param_count (-1 for NULL). name stays
 * valid until the adapters change or lorac_llm_close. [read-only] */
typedef enum lorac_llm_param_kind {
    LORAC_PARAM_BASE = 0,   /* a weight of the model itself */
    LORAC_PARAM_LORA_A = 1, /* lora_A (lora_embedding_A on the embedding) */
    LORAC_PARAM_LORA_B = 2,
    LORAC_PARAM_DORA_M = 3, /* DoRA's magnitude vector */
} lorac_llm_param_kind;
typedef struct lorac_llm_param_info {
    size_t size;           /* sizeof(lorac_llm_param_info): set it before the call */
    const char *name;      /* Hugging Face / PEFT name */
    int ndim;              /* 1 or 2 */
    int64_t shape[2];
    int trainable;
    lorac_llm_param_kind kind;
    int on_lm_head;        /* an adapter tensor on the output layer (lm_head) */
    int on_embedding;      /* the token embedding, or an adapter tensor on it */
    /* adapter tensors: their pair's settings */
    int r;                 /* rank (per part) */
    int parts;             /* 3: one pair per q / k / v inside a fused Linear (split_qkv), else 1 */
    float alpha;
    double scale;          /* alpha / r (rsLoRA: alpha / sqrt(r)) */
    int residual_init;     /* PiSSA / OLoRA: the base weight is the residual of the init */
} lorac_llm_param_info;
LORAC_API int lorac_llm_param_count(const lorac_llm *llm);
LORAC_API lorac_status lorac_llm_param(const lorac_llm *llm, int i, lorac_llm_param_info *out);
/* What Linear module i (lorac_llm_module) is: 0 a block's (or a
 * pre-classifier's), 1 the output layer (lm_head), 2 the classification
 * head; neither 1 nor 2 is in PEFT's all-linear. -1 for a NULL llm or a
 * bad i. [read-only] */
LORAC_API int lorac_llm_module_role(const lorac_llm *llm, int i);

/* Hold the frozen base's Linears in NF4 from now on (QLoRA's base), as
 * opening with lorac_llm_opts.base = LORAC_BASE_NF4 does: every Linear not
 * quantized yet goes to NF4 (Linears in NF4 or a GGUF's blocks keep them),
 * and the token embedding too unless embed_fp32 (a quantized one stays
 * so). For a model from lorac_llm_create or opened in fp32: QLoRA's memory
 * (lorac_llm_get_info) and parameter counts without reopening. Afterwards
 * lorac_llm_get_info's base is LORAC_BASE_NF4 (a GGUF base stays
 * LORAC_BASE_GGUF) and LoRA over it is QLoRA. Refused (LORAC_ERR_ARG) for
 * a bf16 base and once the llm holds an adapter or was prepared or merged.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_quantize_nf4(lorac_llm *llm, int embed_fp32);

/* A llama.cpp LoRA GGUF file (lorac_llm_export_gguf, llama.cpp's
 * convert_lora_to_gguf.py): its header and tensors as lorac's GGUF reader
 * sees them. A GGUF file whose general.type is not "adapter" (a model) is
 * LORAC_ERR_FORMAT. [any thread; one handle: read-only] */
typedef struct lorac_lorafile lorac_lorafile;
typedef struct lorac_lorafile_info {
    size_t size;            /* sizeof(lorac_lorafile_info): set it before the call */
    uint32_t version;       /* GGUF version */
    char arch[64];          /* general.architecture ("" if missing) */
    char adapter_type[32];  /* adapter.type ("" if missing) */
    int has_alpha;          /* adapter.lora.alpha is there ... */
    double alpha;           /* ... with this value */
    int n_tensors;
} lorac_lorafile_info;
typedef struct lorac_lorafile_tensor_info {
    const char *name;       /* valid until lorac_lorafile_close */
    int64_t ne[2];          /* GGUF's ne[0] (row length), ne[1] (rows), as llama.cpp prints them */
    char type[16];          /* "F32", "F16", "Q8_0", ... */
} lorac_lorafile_tensor_info;
LORAC_API lorac_status lorac_lorafile_open(const char *path, lorac_lorafile **out);
LORAC_API void lorac_lorafile_close(lorac_lorafile *f); /* NULL is fine */
LORAC_API lorac_status lorac_lorafile_get_info(const lorac_lorafile *f, lorac_lorafile_info *info);
LORAC_API lorac_status lorac_lorafile_tensor(const lorac_lorafile *f, int i, lorac_lorafile_tensor_info *out);

/* The model's outputs for token ids[B*T] (B sequences of T, no padding;
 * T <= the context): with a classification head its class logits
 * [B, n_classes], else the LM logits [B, T, vocab]. *out from malloc
 * (lorac_free), *n its floats. [one thread per llm] */
LORAC_API lorac_status lorac_llm_logits(lorac_llm *llm, const int *ids, int B, int T, float **out, size_t *n);

/* Merging into a checkpoint file, with the error each step brings. */
typedef enum lorac_merged_format {
    LORAC_MERGED_FP32 = 0, /* a Hugging Face directory, every weight fp32 (PEFT merge_and_unload + save_pretrained) */
    LORAC_MERGED_NF4 = 1,  /* a Hugging Face directory in bitsandbytes' NF4 serialization */
    LORAC_MERGED_GGUF = 2, /* a .gguf base's file again, each adapted tensor re-quantized to its own format */
} lorac_merged_format;
typedef struct lorac_llm_merge_opts {
    size_t size;                /* sizeof(lorac_llm_merge_opts), set by lorac_llm_merge_opts_init */
    lorac_merged_format format; /* what lorac_llm_save_merged writes (default FP32) */
    int nearest;                /* re-quantizing: 1 = each weight to its nearest level; 0 (default) = stochastic
                                   rounding (unbiased: a delta under half a step survives on average) */
    const char *tokenizer;      /* Hugging Face outputs: copy tokenizer files from this directory (NULL: the base's) */
} lorac_llm_merge_opts;
LORAC_API void lorac_llm_merge_opts_init(lorac_llm_merge_opts *o);
typedef struct lorac_llm_merge_report {
    size_t size;               /* sizeof(lorac_llm_merge_report): set it before the call */
    int adapted;               /* LoRA modules merged */
    double fp32_rms, fp32_max; /* bound on |W' - (W + s B A)| (one float rounding) over the adapted weights */
    int requantized;           /* 1: the re-quantized figures below; 0: none (why: note) */
    char formats[64];          /* their formats, "+"-joined ("Q4_1", "NF4") */
    int tensors;               /* weights re-quantized */
    int skipped;               /* adapted Linears the GGUF file has no tensor for (heads), not re-quantized */
    char first_skipped[112];
    double rms_w, rms_delta;   /* RMS of the merged weights W' and of the LoRA deltas */
    double rms_err, max_err;   /* RMS / max of deq(quant(W')) - W' */
    double kept;               /* the share of the LoRA delta the re-quantized weights keep */
    char note[512];
} lorac_llm_merge_report;
/* Merge the adapter applied on llm (lorac_llm_adapter_apply) into the base
 * in fp32 (the delta formed in double; over an NF4 / GGUF base the merge
 * starts from the weights training saw) and re-quantize the merged weights
 * for o->format (FP32: the figures of re-quantizing to the base's GGUF
 * formats, else to NF4, when that is possible; report->requantized 0 and
 * a note otherwise). The llm then computes the fp32 merge;
 * lorac_llm_use_requantized switches it to what the re-quantized file
 * computes. o may be NULL (defaults). [one thread per llm] */
LORAC_API lorac_status lorac_llm_merge_requant(lorac_llm *llm, const lorac_llm_merge_opts *o, lorac_llm_merge_report *report);
/* Put the re-quantized weights (dequantized) into the merged model.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_use_requantized(lorac_llm *llm);
/* Write the merged model as lorac_llm_merge_requant's format says: FP32 /
 * NF4 a directory (created), GGUF the file path; every file via a
 * temporary name, then renamed. FP32 writes the weights the llm holds
 * (before lorac_llm_use_requantized: the fp32 merge). [one thread per llm] */
LORAC_API lorac_status lorac_llm_save_merged(lorac_llm *llm, const char *path);

/* ======================================================================
 * Inference
 * ====================================================================== */

/* Classify text with the model's head (an adapter trained for
 * classification must be active). probs[0..n_probs) receives the softmax
 * over the classes (n_probs >= the class count, see lorac_llm_get_info);
 * *label the argmax (may be NULL). Uses the model's activation buffers:
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_classify(lorac_llm *llm, const char *text, float *probs, int n_probs, int *label);
/* The name of class i from the active adapter's config ("spam"), or NULL.
 * Valid until the adapter changes. [read-only] */
LORAC_API const char *lorac_llm_label(const lorac_llm *llm, int i);

typedef struct lorac_gen_params {
    size_t size;         /* sizeof(lorac_gen_params), set by lorac_gen_params_init */
    int max_new;         /* generate at most this many tokens (default 64) */
    float temperature;   /* 0 = greedy (default) */
    int top_k;           /* 0 = off (default) */
    float top_p;         /* 1 = off (default) */
    uint64_t seed;       /* sampling seed (default 42) */
    int stop[8];         /* stop token ids (not emitted); with n_stop 0 the tokenizer's EOS */
    int n_stop;
    int no_eos_stop;     /* 1: with n_stop 0, no stop token at all */
    int no_kv_cache;     /* 1: recompute the whole sequence for every token (the reference; slow) */
} lorac_gen_params;
LORAC_API void lorac_gen_params_init(lorac_gen_params *p);

/* Called with each new token: its id and its text (bytes; may be part of a
 * UTF-8 character). Return non-zero to stop (the token is kept). */
typedef int (*lorac_token_cb)(int id, const char *piece, size_t len, void *user);

typedef struct lorac_gen_stats {
    int prompt_tokens;       /* the prompt's tokens (after BOS / chat format) */
    double prompt_seconds;   /* until the first new token was known (the prompt's forward) */
    int gen_tokens;          /* new tokens */
    double gen_seconds;      /* after that, until the last */
    int stopped;             /* 0: max_new, 1: a stop token, 2: the callback */
} lorac_gen_stats;

/* Continue prompt ids[0..n) (n >= 1). *out (from malloc; lorac_free) gets
 * the new ids; out / n_out / cb / stats may be NULL; p NULL: defaults.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_generate_ids(lorac_llm *llm, const int *ids, int n, const lorac_gen_params *p,
                                              lorac_token_cb cb, void *user, int **out, int *n_out,
                                              lorac_gen_stats *stats);
/* Continue prompt text (encoded with the model's special tokens; "" starts
 * from BOS, or EOS where there is none). *text (lorac_free) gets the new
 * text; text / cb / stats may be NULL. [one thread per llm] */
LORAC_API lorac_status lorac_llm_generate(lorac_llm *llm, const char *prompt, const lorac_gen_params *p,
                                          lorac_token_cb cb, void *user, char **text, lorac_gen_stats *stats);

/* ======================================================================
 * Training and evaluation (the fields of `lorac train --help`)
 * ====================================================================== */

/* A data set and how it is split (lorac train / eval's data flags). */
typedef struct lorac_data_config {
    const char *task;        /* "classify" (default), "lm", "instruct" */
    const char *data;        /* .tsv .csv .jsonl .json .txt (.gz ok); required */
    const char *val, *test;  /* separate validation / test files (default: split from data) */
    const char *format;      /* tsv | csv | jsonl | json (default: from the file name) */
    const char *text_col, *label_col; /* header name or 0-based index */
    const char *labels;      /* label names in class order, "ham,spam" (default: sorted) */
    int skip_bad_rows;       /* skip malformed rows instead of failing */
    int balance;             /* under-sample every class to the smallest */
    double split_train, split_val; /* fractions (default 0.7, 0.1) */
    int max_examples;        /* at most N training examples (0 = all) */
    int max_eval;            /* a random N of the validation / test examples (0 = all) */
    int max_len;             /* truncate to N tokens (0: 256 or the model's context) */
    const char *chat_format; /* instruct: NULL / "auto" or a family (lorac_llm_chat) */
    int whole;               /* evaluation: every row of data is the test set, unsplit */
} lorac_data_config;

typedef struct lorac_train_progress {
    int epoch, epochs, step, total_steps;
    double loss, lr, tokens_per_s, elapsed, eta;
    int is_eval;             /* 1: an evaluation finished: val_loss, val_acc (acc < 0 if not classification) */
    double val_loss, val_acc;
} lorac_train_progress;
/* Return non-zero to cancel: training stops at the end of this step and
 * lorac_llm_train returns LORAC_ERR_CANCELLED (the adapter trained so far
 * stays on the llm). */
typedef int (*lorac_train_cb)(const lorac_train_progress *p, void *user);

/* Every field a one-line addition: lorac_train_config_init sets the
 * defaults; 0 / NULL mean "default" where noted. */
typedef struct lorac_train_config {
    size_t size;                 /* sizeof(lorac_train_config), set by lorac_train_config_init */
    lorac_data_config data;
    /* method */
    const char *method;          /* "lora" (default; over an NF4 / GGUF base: QLoRA), "full", "head", "last-layers:N" */
    int r;                       /* LoRA rank (8) */
    float alpha;                 /* lora_alpha (0: = r) */
    float dropout;               /* lora_dropout (0) */
    const char *target;          /* target_modules, comma list or "all-linear" (default) */
    const char *target_regex;    /* instead: one regex over full module names */
    const char *bias;            /* "none" (default), "all", "lora_only" */
    const char *modules_to_save; /* comma list */
    int rslora;                  /* scale alpha / sqrt(r) */
    const char *layers;          /* layers_to_transform, "0,1,2" */
    int split_qkv;               /* GPT-2: one pair for each of q, k, v */
    const char *head_init;       /* a new classification head: "hf" (default) or "torch" */
    /* optimizer */
    int epochs;                  /* 1 */
    int batch;                   /* 8 */
    int grad_accum;              /* 1 */
    int max_steps;               /* 0 = no limit */
    float lr;                    /* 1e-4 */
    float weight_decay;          /* 0.01 */
    int warmup;                  /* linear warm-up steps (0) */
    const char *schedule;        /* "constant" (default), "linear", "cosine" */
    float clip;                  /* global grad-norm clip, 0 = off */
    int eval_every;              /* steps between evaluations (0: each epoch) */
    int skip_nonfinite;          /* skip a NaN / Inf step instead of failing */
    int padded_batches;          /* pad instead of packing (comparisons) */
    uint64_t seed;               /* 123 */
    int gradient_checkpointing;  /* recompute activations in backward (decoders) */
    /* output */
    const char *metrics_path;    /* append one JSON line per step / evaluation (NULL: none) */
    lorac_train_cb progress;     /* may be NULL */
    void *user;
    /* PEFT family (lorac train's --dora ... --model-dropout) */
    int dora;                    /* use_dora: a trained magnitude per output row */
    const char *rank_pattern;    /* rank_pattern "K=R,..": r per module (key: the name ends in .K or is K) */
    const char *alpha_pattern;   /* alpha_pattern "K=A,..": lora_alpha per module */
    const char *init;            /* init_lora_weights: "true" (default), "false", "gaussian", "pissa", "pissa_niter_K",
                                    "olora" */
    float loraplus_ratio;        /* LoRA+: lora_B (and 1-D params) learn at lr * ratio; 0 = off (default) */
    float loraplus_lr_embedding; /* LoRA+: lr of embedding LoRA pairs (1e-6) */
    float loraplus_weight_decay; /* LoRA+: weight decay of its groups (0; weight_decay is then unused, as PEFT) */
    int model_dropout;           /* 1 (default): the model's own dropout rates from config.json apply in training
                                    (encoders, as torch's train mode); 0: off (LoRA dropout only) */
    /* checkpoints (lorac_llm_fit) */
    const char *checkpoint_dir;  /* write resumable checkpoints DIR/step-N here (NULL: none); one is always
                                    written when training stops early (stop / cancel) */
    int save_every;              /* ... and every N optimizer steps and at the end (0: only when stopped early) */
    int keep_checkpoints;        /* keep the newest K (2); 0 keeps all */
    const char *resume_from;     /* a checkpoint (lorac_checkpoint_find) to continue from, step for step; the
                                    llm must be prepared as for the run that wrote it */
    const char *const *run_config; /* more (name, value) pairs, NULL-terminated, that a resumed run must share
                                    (the library records the method and LoRA settings itself); may be NULL */
    volatile sig_atomic_t *stop; /* may be NULL; when *stop becomes non-zero (a signal handler may set it),
                                    training stops at the next step boundary (lorac_llm_fit) */
    struct lorac_ranks *ranks;   /* data parallel (lorac_ranks_start): NULL = this process alone */
} lorac_train_config;
LORAC_API void lorac_train_config_init(lorac_train_config *c);

typedef struct lorac_split_scores {
    int n;                   /* examples (0: the split is empty) */
    double loss;             /* mean loss (per example for classify, per target token otherwise) */
    double acc;              /* classify: accuracy; else -1 */
} lorac_split_scores;

typedef struct lorac_train_report {
    int steps;
    double final_loss, seconds, tokens_per_s;
    int64_t tokens;
    int64_t params_trainable, params_all;
    lorac_split_scores train, val, test; /* scored after training */
    int n_labels;
} lorac_train_report;

/* Load c->data, add a classification head (classify), apply the method,
 * train, and score the train / validation / test splits. The trained
 * adapter stays on the llm (lorac_llm_adapter_save writes it; classify and
 * generate use it). The llm must hold no adapter yet. res may be NULL.
 * On LORAC_ERR_CANCELLED the adapter trained so far stays too.
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_train(lorac_llm *llm, const lorac_train_config *c, lorac_train_report *res);

/* Score the model as it is (with its active adapter) on d: every row of
 * d->data when d->whole, else the splits as training made them (same seed).
 * batch 0: 8. res->train / val / test. [one thread per llm] */
LORAC_API lorac_status lorac_llm_evaluate(lorac_llm *llm, const lorac_data_config *d, int batch, uint64_t seed,
                                          lorac_train_report *res);

/* ---- training in stages, data-parallel ranks, checkpoints (the training share of the CLI) ----
 *
 * lorac_llm_train in steps a program can watch and steer, as lorac train
 * does: load the data (lorac_data_load), prepare the llm for a method
 * (lorac_llm_prepare: a classification head, LoRA / QLoRA / full /
 * last-layers / head), train (lorac_llm_fit: checkpoints, resume, a stop
 * flag, data-parallel ranks), then score splits (lorac_llm_score). The
 * trainable-parameter count is lorac_llm_get_info's params_trainable. */

/* A data set split and tokenized for one llm (train / validation / test). */
typedef struct lorac_data lorac_data;
/* Load, split (seed: balance, shuffle, split, the max_eval sample) and
 * tokenize d for llm's tokenizer. On failure *out is NULL. The handle does
 * not refer to llm afterwards. [one thread per llm] */
LORAC_API lorac_status lorac_data_load(lorac_llm *llm, const lorac_data_config *d, uint64_t seed, lorac_data **out);
/* NULL is fine. [one thread per data] */
LORAC_API void lorac_data_free(lorac_data *data);

typedef struct lorac_data_info {
    size_t size;             /* sizeof(lorac_data_info): set it before the call */
    char task[16];           /* "classify", "lm" or "instruct" */
    int n[3];                /* examples: train, validation, test */
    int skipped[3];          /* bad rows skipped (skip_bad_rows) in data, val, test */
    int truncated[3];        /* examples cut to max_len tokens, per split */
    int max_len;             /* the token limit used */
    int n_labels;            /* classify: the classes (lorac_data_label); else 0 */
    int has_chat;            /* instruct: 1, and chat says how the examples were written */
    lorac_chat_info chat;
} lorac_data_info;
/* [read-only] */
LORAC_API lorac_status lorac_data_get_info(const lorac_data *data, lorac_data_info *info);
/* The name of class i ("spam"), and in *count (may be NULL) its training
 * examples; NULL when i is out of range. Valid until lorac_data_free.
 * [read-only] */
LORAC_API const char *lorac_data_label(const lorac_data *data, int i, int *count);

/* Check c before anything slow: its size, value ranges, the method, the
 * LoRA lists and patterns, init. No model needed. [any thread] */
LORAC_API lorac_status lorac_train_config_check(const lorac_train_config *c);

/* Make a freshly opened llm trainable for c->method on data: a new
 * classification head for classify data (c->head_init, seeded by c->seed),
 * then LoRA from c's fields (QLoRA over an NF4 / GGUF base: its token
 * embedding quantized too unless opened with embed_fp32), full,
 * last-layers:N or head; c->gradient_checkpointing. As PEFT's SEQ_CLS, LoRA
 * on a classifier trains the new head in full (*head_in_full = 1, may be
 * NULL) unless c->modules_to_save is given or the head is a LoRA target.
 * Refused when the llm holds an adapter; a failure may leave it half
 * prepared (close it). [one thread per llm] */
LORAC_API lorac_status lorac_llm_prepare(lorac_llm *llm, const lorac_train_config *c, const lorac_data *data,
                                         int *head_in_full);

/* lorac_llm_prepare without a data set, as PEFT's get_peft_model with
 * task_type None: c->method on the llm as it is, for inspecting what a
 * method trains (lorac_llm_param's tree, lorac_llm_get_info's counts) or
 * saving the adapter it makes. No head is added; a head added with
 * lorac_llm_add_head is not put into modules_to_save (LoRA trains its
 * matrices only, and the head only when c->modules_to_save names it or it
 * is a target); "head" trains it, and is refused without one. Over an NF4 /
 * GGUF base (lorac_llm_quantize_nf4) LoRA is QLoRA. c's data and optimizer
 * fields are not used, but c is checked as lorac_train_config_check does.
 * lorac_llm_fit needs lorac_llm_prepare instead. Refused when the llm holds
 * an adapter; a failure may leave it half prepared (close it).
 * [one thread per llm] */
LORAC_API lorac_status lorac_llm_apply_method(lorac_llm *llm, const lorac_train_config *c);

/* c's LoRA settings as the library reads them (lorac info's "LoRA kind"
 * line): after lorac_train_config_check's checks (c->method included), the
 * values PEFT's LoraConfig would hold. [any thread] */
typedef struct lorac_train_config_lora_info {
    size_t size;             /* sizeof(lorac_train_config_lora_info): set it before the call */
    int r;
    float alpha;             /* c->alpha, or r when 0 */
    float dropout;
    int rslora, dora, split_qkv;
    char init[32];           /* init_lora_weights as PEFT writes it: "true", "false", "gaussian", "pissa",
                                "pissa_niter_K", "olora" */
    int default_init;        /* 1: "true" (A Kaiming-uniform, B zero) */
    char bias[16];           /* "none", "all" or "lora_only" */
    int n_targets;           /* names in target (0 with target_regex) */
    int n_modules_to_save, n_layers, n_rank_pattern, n_alpha_pattern;
} lorac_train_config_lora_info;
LORAC_API lorac_status lorac_train_config_lora(const lorac_train_config *c, lorac_train_config_lora_info *out);

/* What c's LoRA fields would put on one module, without changing the llm
 * (lorac modules' arrows): module is a Linear module's name
 * (lorac_llm_module) or the token embedding's (its lorac_llm_param name
 * without ".weight": "model.embed_tokens", "transformer.wte"). Matching is
 * PEFT's: c->target_regex in full, else each c->target name exactly or as
 * a suffix after a "." ("all-linear": every Linear in the blocks, not
 * lm_head, not a classification head, never the embedding), then
 * c->layers; r and alpha after c->rank_pattern / alpha_pattern. c->method
 * is not looked at (any method's c gives the same answer). c is checked
 * as lorac_train_config_check checks its LoRA fields. An unknown module
 * name is LORAC_ERR_ARG. [read-only] */
typedef struct lorac_llm_target_info {
    size_t size;           /* sizeof(lorac_llm_target_info): set it before the call */
    int targeted;          /* 1: c puts a LoRA pair on the module; 0: r, parts, alpha, scale, dora, params are 0 */
    int embedding;         /* 1: the module is the token embedding (lora_embedding_A / _B) */
    int r;                 /* its rank (rank_pattern applied; per part) */
    int parts;             /* 3: one pair per q / k / v inside a fused Linear (split_qkv), else 1 */
    float alpha;           /* its lora_alpha (alpha_pattern applied) */
    double scale;          /* alpha / r (rsLoRA: alpha / sqrt(r)) */
    int dora;              /* 1: with a DoRA magnitude (c->dora; Linears only) */
    int64_t params;        /* trainable parameters the pair adds: lora_A, lora_B (and the DoRA magnitude) */
} lorac_llm_target_info;
LORAC_API lorac_status lorac_llm_module_target(const lorac_llm *llm, const lorac_train_config *c, const char *module,
                                               lorac_llm_target_info *out);

typedef struct lorac_fit_report {
    size_t size;             /* sizeof(lorac_fit_report): set it before the call */
    int steps;               /* optimizer steps done (a resumed run counts the checkpoint's too) */
    double final_loss;       /* mean loss of the last epoch's steps */
    double seconds;          /* training time, periodic evaluations excluded */
    double eval_seconds;     /* time in the periodic evaluations */
    int64_t tokens, padded_tokens; /* real tokens trained on; with padding (what was computed) */
    double tokens_per_s;
    int resumed_step;        /* the checkpoint's step when resumed, else 0 */
    int stopped;             /* 1: stopped early by c->stop or the progress callback (LORAC_ERR_CANCELLED) */
    char checkpoint[1024];   /* the last checkpoint written ("" if none) */
} lorac_fit_report;
/* Train the llm lorac_llm_prepare made on data's training split
 * (evaluations on its validation split), as c's optimizer, checkpoint and
 * ranks fields say; c's method and LoRA fields must be those given to
 * lorac_llm_prepare. Stopped early: LORAC_ERR_CANCELLED with rep->stopped =
 * 1 and the checkpoint saved (checkpoint_dir). With c->ranks every rank
 * calls it with the same arguments; rank 0 alone calls c->progress and
 * writes files. rep may be NULL. [one thread per llm] */
LORAC_API lorac_status lorac_llm_fit(lorac_llm *llm, const lorac_train_config *c, lorac_data *data,
                                     lorac_fit_report *rep);
/* Score split 0 (train), 1 (validation) or 2 (test) of data with the model
 * as it is (active adapter, merged or re-quantized weights): mean loss per
 * example (classify) or per target token, accuracy for classify (else -1);
 * out->n = 0 and loss NAN for an empty split. batch 0: 8. ranks: the split is shared out
 * over them (NULL: this process). [one thread per llm] */
LORAC_API lorac_status lorac_llm_score(lorac_llm *llm, const lorac_data *data, int split, int batch,
                                       struct lorac_ranks *ranks, lorac_split_scores *out);

/* Data-parallel ranks: under `mpirun -np N` (or srun) every process runs
 * the same program; lorac_ranks_start joins them. A NULL lorac_ranks is
 * this process alone (rank 0 of 1), valid wherever ranks are taken. */
typedef struct lorac_ranks lorac_ranks;
typedef struct lorac_ranks_stats {
    int64_t collectives;     /* collective calls so far */
    int64_t bytes;           /* bytes this rank contributed to sums */
    double seconds;          /* wall time inside collectives */
    double wait_seconds;     /* of which waiting for the slowest rank */
} lorac_ranks_stats;
/* The rank count / this rank as the launcher set them in the environment
 * (1 / 0 when started by hand), before any start. [any thread] */
LORAC_API int lorac_ranks_launched_size(void);
LORAC_API int lorac_ranks_launched_rank(void);
/* Join the ranks when launched with more than one (*out NULL otherwise);
 * timeout_s (> 0) bounds every wait for the others (LORAC_ERR_COMM then).
 * Fails with a hint in a build without MPI launched as several ranks.
 * Once per process, before starting threads. */
LORAC_API lorac_status lorac_ranks_start(double timeout_s, lorac_ranks **out);
/* Leave the job; every rank calls it. NULL is fine. */
LORAC_API void lorac_ranks_stop(lorac_ranks *r);
/* End every rank of the job at once with exit code `code` (after an error
 * on this rank); returns only for NULL. */
LORAC_API void lorac_ranks_abort(lorac_ranks *r, int code);
LORAC_API int lorac_ranks_rank(const lorac_ranks *r);        /* 0 for NULL */
LORAC_API int lorac_ranks_size(const lorac_ranks *r);        /* 1 for NULL */
LORAC_API const char *lorac_ranks_host(const lorac_ranks *r); /* this rank's host ("" for NULL) */
/* Wait until every rank arrives (`what` names the wait in a timeout error).
 * Every rank calls it. */
LORAC_API lorac_status lorac_ranks_barrier(lorac_ranks *r, const char *what);
/* Where the ranks run, "2 hosts: a (ranks 0-1), b (ranks 2-3)", into
 * buf[0..n). Every rank calls it. */
LORAC_API lorac_status lorac_ranks_describe(lorac_ranks *r, char *buf, size_t n);
/* This rank's communication so far (zeros for NULL). */
LORAC_API lorac_status lorac_ranks_get_stats(const lorac_ranks *r, lorac_ranks_stats *s);

/* Checkpoints (lorac_train_config.checkpoint_dir): DIR/step-N directories,
 * DIR/latest naming the newest; written whole or not at all. [any thread] */
/* The checkpoint `path` means: a checkpoint itself, a checkpoint directory
 * (its newest) or a run directory holding checkpoints/; into ckpt[0..n).
 * run_dir (may be NULL) gets the run directory it belongs to
 * (".../RUN/checkpoints/step-N" -> ".../RUN"), "" if not laid out so. */
LORAC_API lorac_status lorac_checkpoint_find(const char *path, char *ckpt, size_t n, char *run_dir, size_t n_run);
/* 1 when dir holds a complete checkpoint, else 0. */
LORAC_API int lorac_checkpoint_exists(const char *dir);
/* Remove every checkpoint under dir (the directory stays): starting over. */
LORAC_API lorac_status lorac_checkpoint_clear(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
