/* kvcache.h - decoding over a key/value cache: a prompt is read once
 * ("prefill"), then each new token costs one forward over one row, its
 * attention reading the keys and values the earlier tokens left in the cache.
 * Several sequences decode together: their rows go through every Linear as
 * one GEMM (the base weights are read once per step for all of them), and
 * each sequence adds its own adapter's low-rank term on its own rows
 * (Punica's BGMV / S-LoRA: sequences with the same adapter are grouped).
 *
 * For every decoder lorac_model_forward runs (GPT-2, Llama / SmolLM2, Qwen2,
 * Qwen3, Mistral, Gemma 3, Phi-3), fp32 or quantized base (bf16, NF4, GGML
 * blocks), adapters merged or not. The logits equal those of
 * lorac_model_forward over the whole sequence up to float rounding (the same
 * layer code, decoder.c's lorac_decoder_layer_fwd, runs both). Encoders
 * (BERT) are not decoded: LORAC_ERR_UNSUPPORTED.
 *
 * Memory: the cache holds, per layer, K and V of n_slots x max_len tokens in
 * fp32: 2 n_layer n_slots max_len n_kv_head head_dim floats (SmolLM2-135M:
 * 46 KB per token). Pages are touched only as tokens fill them.
 *
 * Ownership: lorac_kv_create returns a cache the caller frees with
 * lorac_kv_free; it belongs to the model it was made for (which must outlive
 * it) and keeps scratch buffers grown to the largest batch seen. Not
 * thread-safe: one lorac_model_decode at a time per model and cache. */
#ifndef LORAC_MODELS_KVCACHE_H
#define LORAC_MODELS_KVCACHE_H

#include "models/model.h"

typedef struct lorac_kv lorac_kv; /* K/V caches for up to n_slots sequences of up to max_len tokens each */

/* A cache for model m. LORAC_ERR_ARG unless 1 <= n_slots and
 * 1 <= max_len <= cfg.n_ctx; LORAC_ERR_UNSUPPORTED for an encoder. */
lorac_status lorac_kv_create(const lorac_model *m, int n_slots, int max_len, lorac_kv **out);
void lorac_kv_free(lorac_kv *kv);            /* accepts NULL */
void lorac_kv_reset(lorac_kv *kv, int slot); /* the slot is empty again */
int lorac_kv_len(const lorac_kv *kv, int slot); /* tokens cached in the slot */
int lorac_kv_slots(const lorac_kv *kv);
int lorac_kv_max_len(const lorac_kv *kv);

/* One batched forward over n sequences. Sequence i appends the tokens
 * ids[offs[i] .. offs[i+1]) to cache slot slot[i] (a prompt prefill when
 * there are many, one decode step when there is one; both may mix in one
 * call) and receives the logits of its last new token in
 * logits[i*V .. (i+1)*V). The base weights run once over the rows of all
 * sequences; each sequence adds its own adapter's low-rank term on its rows.
 * adapters == NULL: every Linear uses its own L->lora (the active adapter;
 * nothing when merged). Otherwise adapters[i] is sequence i's adapter: NULL =
 * the base alone, or a table [m->n_lin] of lorac_lora * (NULL entries: no
 * adapter on that Linear), i.e. lorac_adapter_slot.lora of
 * lora/adapter_set.h. An adapter merged into the base weights is part of the
 * base for every sequence. LoRA dropout never applies (inference).
 * LORAC_ERR_ARG for a slot out of range, a slot named twice, a sequence that
 * would pass max_len, a sequence with no token, a token outside the
 * vocabulary, n < 1, or a cache made for another model; the cache is then
 * unchanged. */
lorac_status lorac_model_decode(lorac_model *m, lorac_kv *kv, int n, const int *slot, const int *ids, const int *offs,
                                lorac_lora *const *const *adapters, float *logits);

#endif
