/* adapter_io.h - saving and loading a trained adapter in PEFT's layout:
 *   DIR/adapter_config.json        LoraConfig fields as PEFT writes them
 *   DIR/adapter_model.safetensors  "base_model.model.<module>.lora_A.weight" [r, in]
 *                                  "base_model.model.<module>.lora_B.weight" [out, r]
 *                                  plus every trainable base tensor (modules_to_save,
 *                                  biases) and any head lorac created, as
 *                                  "base_model.model.<name>".
 * Files are written atomically (temporary file, fsync, rename). */
#ifndef LORAC_LORA_ADAPTER_IO_H
#define LORAC_LORA_ADAPTER_IO_H

#include "lora/lora.h"

typedef struct lorac_adapter_meta {
    const char *base_model;   /* base_model_name_or_path */
    const char *task_type;    /* "SEQ_CLS" or "CAUSAL_LM" */
    int n_classes;            /* head size, 0 if none */
    const char *const *label_names; /* n_classes names or NULL */
} lorac_adapter_meta;

lorac_status lorac_adapter_save(const lorac_model *m, const lorac_lora_config *c, const lorac_adapter_meta *meta,
                                const char *dir);

/* Read DIR/adapter_config.json into c (and the head size / labels lorac
 * stored), without touching a model. label_names (may be NULL) receives up to
 * 64 malloc'd names. */
lorac_status lorac_adapter_read_config(const char *dir, lorac_lora_config *c, int *n_classes, char **label_names,
                                       int max_labels);

/* Apply the adapter in DIR to m: injects LoRA per its config, adds the head
 * if the adapter has one, and loads every tensor (shapes checked). */
lorac_status lorac_adapter_load(lorac_model *m, const char *dir, lorac_lora_config *c_out);

#endif
