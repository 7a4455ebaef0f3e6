/* api.h - what the public API's handles hold (internal to src/api).
 *
 * struct lorac_llm owns a model, its tokenizer and a set of named adapters
 * (lora/adapter_set.h); an adapter applied straight onto the base (public
 * lorac_llm_adapter_apply, or trained by lorac_llm_train) is recorded with
 * its LoRA config and labels so that lorac_llm_adapter_save can write it.
 * struct lorac_tok wraps a tokenizer, owned (lorac_tok_open) or borrowed
 * from an llm (lorac_llm_tok). Every public entry point checks its handles
 * with API_NEED and its option structs' size with API_SIZE. */
#ifndef LORAC_API_API_H
#define LORAC_API_API_H

#include "lorac.h"

#include "core/status.h"
#include "io/tokenizer.h"
#include "lora/adapter_set.h"
#include "lora/lora.h"
#include "models/model.h"

struct lorac_tok {
    lorac_tokenizer *t;
    int owned;          /* 1: lorac_tok_open made it */
};

#define LORAC_API_MAX_LABELS 64

struct lorac_llm {
    lorac_model *m;
    struct lorac_tok tok;
    char tok_path[1024];          /* lorac_llm_opts.tokenizer ("" = the model's) */
    lorac_base_format base;
    int embed_fp32;               /* NF4 / GGUF: the token embedding stays fp32 */
    lorac_adapter_set set;        /* named adapters */
    int applied;                  /* 1: an adapter sits straight on the base (applied or trained) */
    int applied_lora;             /* ... and it is a LoRA adapter (saveable); 0 for full / head / last-layers */
    lorac_lora_config applied_cfg;
    int applied_classes;
    char *labels[LORAC_API_MAX_LABELS]; /* class names of the applied adapter (malloc'd) */
    int n_labels;
    /* lorac_llm_merge_requant (merge.c): the merged model's format, its
     * tokenizer source and the re-quantized weights (NULL: none) */
    int merged;
    lorac_merged_format merged_format;
    char merged_tok[1024];
    struct lorac_requant *requant;
};

/* NULL handle / pointer: LORAC_ERR_ARG naming the call and the argument. */
#define API_NEED(p, fn)                                                                                          \
    do {                                                                                                         \
        if (!(p)) return lorac_fail(LORAC_ERR_ARG, "%s: %s is NULL", fn, #p);                                    \
    } while (0)
/* An options struct whose size field is not this library's. */
#define API_SIZE(o, type, fn)                                                                                    \
    do {                                                                                                         \
        if ((o) && (o)->size != sizeof(type))                                                                    \
            return lorac_fail(LORAC_ERR_ARG, "%s: %s.size is %zu, this library's is %zu; hint: call %s_init first, " \
                              "and build against the lorac.h of the library you link", fn, #type, (o)->size,      \
                              sizeof(type), #type);                                                              \
    } while (0)

/* An llm around a model made elsewhere (lorac_model_create_random), without
 * a tokenizer; lorac_llm_close frees m. */
lorac_status lorac_api_wrap(lorac_model *m, lorac_llm **out);
/* Forget the applied adapter's record (labels freed). */
void lorac_api_forget_applied(lorac_llm *llm);
/* Free what lorac_llm_merge_requant keeps (lorac_llm_close). */
void lorac_api_merge_free(lorac_llm *llm);
/* Class names of the active adapter (named or applied), or NULL. */
const char *lorac_api_label(const lorac_llm *llm, int i);

#endif
