/* adapter_set.h - several named LoRA adapters over one base model, as PEFT's
 * load_adapter / set_adapter / disable_adapter / add_weighted_adapter.
 *
 * The base weights are loaded once. Each adapter keeps its own LoRA pairs
 * (and its own classification head, when it has one); activating an adapter
 * points the model's Linears (and head) at that adapter's tensors, so a
 * switch costs a pointer walk over the modules, no copying and no reload.
 *
 * Limits (each is an error with a hint, never silent):
 *  - an adapter whose modules_to_save are not its classification head, or
 *    that trains biases (bias = all / lora_only), changes base tensors and
 *    cannot share the base: load it alone (lorac_adapter_load) or merge it;
 *  - combinations take adapters without a head (LM adapters), as PEFT
 *    refuses to combine modules_to_save. */
#ifndef LORAC_LORA_ADAPTER_SET_H
#define LORAC_LORA_ADAPTER_SET_H

#include "lora/lora.h"

typedef struct lorac_adapter_slot {
    char name[64];
    lorac_lora_config cfg;
    lorac_lora **lora;          /* [model n_lin] (NULL where the adapter has none) */
    int n_classes;              /* 0: no head */
    float *head_W, *head_b;     /* [n_classes, C], [n_classes] */
    float *pre_W, *pre_b;       /* a fresh pre_head's weights (DistilBERT), else NULL */
    char **labels;              /* label names from the adapter config (may be NULL) */
    int n_labels;
} lorac_adapter_slot;

typedef struct lorac_adapter_set {
    lorac_model *m;
    lorac_adapter_slot *slot;
    int n, cap;
    int active;                 /* index, or -1 = all adapters disabled */
    int n_lin;                  /* the length of every slot's lora table (the model's n_lin, which grows when
                                   an adapter with a classification head adds the head Linear) */
} lorac_adapter_set;

void lorac_adapters_init(lorac_adapter_set *s, lorac_model *m);
/* Load the PEFT adapter in dir under `name` (not activated). */
lorac_status lorac_adapters_load(lorac_adapter_set *s, const char *name, const char *dir);
/* Make `name` the active adapter; NULL or "none" disables every adapter
 * (the base model alone; a classifier then has no head). */
lorac_status lorac_adapters_activate(lorac_adapter_set *s, const char *name);
/* A new adapter `name` combining n existing ones with weights, as PEFT's
 * add_weighted_adapter:
 *   "linear": same r for all; A = sum sign_i sqrt(|w_i s_i|) A_i,
 *             B = sum sqrt(|w_i s_i|) B_i  (s_i = each adapter's scale)
 *   "cat":    r = sum r_i; A = rows [w_i s_i A_i], B = columns [B_i]
 * The new adapter has lora_alpha = r (scale 1 unless rsLoRA), like PEFT's. */
lorac_status lorac_adapters_combine(lorac_adapter_set *s, const char *name, const char *const *names, const float *weights,
                                    int n, const char *type);
/* Free the adapter `name` and drop it from the set (the others keep their
 * order; the active one stays active, or the base alone when it was `name`).
 * LORAC_ERR_ARG when no adapter has that name. */
lorac_status lorac_adapters_unload(lorac_adapter_set *s, const char *name);
/* Bytes held by the adapters' tensors (LoRA A/B and heads). */
size_t lorac_adapters_bytes(const lorac_adapter_set *s);
int lorac_adapters_find(const lorac_adapter_set *s, const char *name);
/* Deactivates and frees every adapter (the model stays usable, base only). */
void lorac_adapters_free(lorac_adapter_set *s);

#endif
