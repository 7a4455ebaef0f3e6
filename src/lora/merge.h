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

#endif
