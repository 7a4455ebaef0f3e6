/* lorac/adapter.h - PEFT adapters on an llm: applied or named (load, use,
 * combine, unload), saved, merged (merge_and_unload, or into fp32 / NF4 /
 * re-quantized GGUF checkpoints with an error report), exported as a
 * llama.cpp LoRA GGUF, and such a GGUF file read back (lorac_lorafile).
 * Part of lorac.h (its conventions apply). */
#ifndef LORAC_ADAPTER_H
#define LORAC_ADAPTER_H

#include "core.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* ---- Merging into checkpoints, LoRA GGUF files (lorac merge / info) ----
 * Besides lorac_llm*, one more public namespace that no internal name uses:
 * lorac_lorafile* (a llama.cpp LoRA GGUF). */

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

#ifdef __cplusplus
}
#endif
#endif
