/* merge.h - fold LoRA adapters into the base weights and back out again
 * (PEFT's merge_adapter / unmerge_adapter / merge_and_unload), and write the
 * merged model as an ordinary Hugging Face checkpoint.
 *
 * Merging changes W in place: W += scale * B_p A_p for every part block p of
 * every adapted Linear (for GPT-2's Conv1D layout, W [in, out], the transpose
 * is added). A base weight that is a read-only view into the checkpoint is
 * copied into owned memory first; the checkpoint file is never written. A
 * merged adapter is skipped by lorac_linear_fwd / _bwd, so the model's output
 * is the same before and after merging (up to float rounding). */
#ifndef LORAC_LORA_MERGE_H
#define LORAC_LORA_MERGE_H

#include "models/model.h"

/* Merge every adapter that is not merged yet. Refuses (LORAC_ERR_UNSUPPORTED)
 * an adapter on a tied lm_head, whose weight is also the token embedding.
 * Nothing is changed when it fails. */
lorac_status lorac_lora_merge(lorac_model *m);

/* (B_p A_p)[o, i] of L's adapter, p the part block of output row o, summed in
 * double: the delta merging adds is scale times this. */
double lorac_lora_ba(const lorac_linear *L, int o, int i);

/* Subtract every merged adapter again (W -= scale * B A); restores W to
 * within float rounding (the delta is formed in double). */
void lorac_lora_unmerge(lorac_model *m);

/* Write a complete checkpoint of m's current weights (merge first to bake in
 * the adapters) into out_dir (created if needed):
 *   config.json        copied from a Hugging Face base directory, or
 *                      generated from m->cfg for a GGUF base;
 *   model.safetensors  every base weight under its HF name in F32 (a tied
 *                      lm_head is not duplicated; a classification head
 *                      "score" is included);
 *   tokenizer files    tokenizer.json, tokenizer_config.json, vocab.json,
 *                      merges.txt, tokenizer.model, special_tokens_map.json,
 *                      each copied when present in tokenizer_src (a
 *                      directory; NULL = the base directory, if it is one).
 * Every file is written atomically. */
lorac_status lorac_model_save_merged(lorac_model *m, const char *out_dir, const char *tokenizer_src);

/* ---- merging into a quantized base: re-quantized (merge_quant.c) --------
 * After lorac_lora_merge, every adapted Linear's merged fp32 weight W' is
 * quantized again, to NF4 (to_nf4: bitsandbytes' NF4 with double
 * quantization, the Linears of the blocks only, as bitsandbytes leaves heads
 * alone) or, for a model loaded from a GGUF file, to the format its tensor
 * has in that file (any GGML block format lorac reads, or F32 / F16 written as
 * such; rows in the file's order), and compared with W':
 * the error re-quantizing introduces (the fp32 merge's is one float
 * rounding). A Linear with no tensor in the file (a classification head) is
 * skipped (counted in n_skipped); a tensor of another type is
 * LORAC_ERR_UNSUPPORTED, and so is a base that is no GGUF file. */
typedef struct lorac_requant_entry {
    const lorac_linear *L;
    char tensor[64];        /* its GGUF name (NF4: its weight's HF name) */
    lorac_dtype dtype;      /* ... and type (GGUF) */
    int nf4;                /* re-quantized to NF4 instead: q */
    lorac_qweight q;        /* NF4 [out, in] (owning) */
    uint64_t file_offset;   /* where its data sits in the base file */
    void *bytes;            /* the re-quantized data (nbytes, as in the file) */
    size_t nbytes;
    double rms_w, rms_delta;/* RMS of W' and of the LoRA delta s B A */
    double rms_err, max_err;/* RMS / max of deq(quant(W')) - W' */
    double kept;            /* <deq(quant(W')) - (W' - delta), delta> / <delta, delta>: the share of the delta kept */
    double sum_w2, sum_delta2, sum_err2, sum_kept; /* the sums behind them */
} lorac_requant_entry;
typedef struct lorac_requant {
    lorac_requant_entry *e;
    int n;
    double rms_w, rms_delta, rms_err, max_err, kept; /* over all of them */
    int n_skipped;          /* adapted Linears the file has no tensor for ... */
    char skipped[112];      /* ... the first of them */
} lorac_requant;
/* stochastic: round each weight to the level below or above it at random,
 * unbiased (lorac_quant_row_rng / lorac_nf4_quantize_rng; seeded by the
 * weight's name, so the same output every run), instead of to the nearest:
 * a delta smaller than half a step then survives on average instead of
 * rounding back to the base's own codes. */
lorac_status lorac_merge_requantize(const lorac_model *m, int to_nf4, int stochastic, lorac_requant *rq);
void lorac_requant_free(lorac_requant *rq);
/* Put the re-quantized values (dequantized) into m's merged fp32 weights, so
 * that m computes what the re-quantized file will. */
lorac_status lorac_requant_apply(lorac_model *m, const lorac_requant *rq);
/* The base GGUF file with the re-quantized tensors in place of the adapted
 * ones: every other byte (metadata, tokenizer, other tensors) is the base
 * file's, so each tensor keeps its name, type, shape and offset. Atomic. */
lorac_status lorac_gguf_write_requantized(const lorac_model *m, const lorac_requant *rq, const char *path);
/* A Hugging Face checkpoint in bitsandbytes' 4-bit serialization (what
 * transformers' save_pretrained writes for load_in_4bit, bnb_4bit_quant_type
 * "nf4", bnb_4bit_use_double_quant): every Linear of the blocks as NF4 (the
 * re-quantized ones from rq (NF4), the others as loaded if NF4 already, else
 * quantized now), each "X.weight" as packed U8 [(n+1)/2, 1] codes plus
 * "X.weight.absmax" (U8), ".nested_absmax", ".quant_map",
 * ".nested_quant_map" (F32) and ".quant_state.bitsandbytes__nf4" (the JSON
 * of quant_type, blocksize, dtype, shape, nested_blocksize, nested_dtype,
 * nested_offset, as bytes); everything else F32; config.json with its
 * quantization_config; the tokenizer files as lorac_model_save_merged. */
lorac_status lorac_model_save_merged_nf4(lorac_model *m, const lorac_requant *rq, const char *out_dir,
                                         const char *tokenizer_src);

#endif
