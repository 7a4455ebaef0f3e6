/* lora_init.h - init_lora_weights (true, false, gaussian, pissa,
 * pissa_niter_K, olora) for one LoRA pair; the math is in lora_init.c. */
#ifndef LORAC_LORA_LORA_INIT_H
#define LORAC_LORA_LORA_INIT_H

#include <stddef.h>

#include "lora/lora.h"

/* Fill l's A and B as c->init says, drawing from rng where it is random.
 * PiSSA / OLoRA also change L's base weight into the residual (owned, and
 * quantized again in its format when it was quantized) and keep the initial
 * pair in l->A0 / l->B0. */
lorac_status lorac_lora_init_weights(lorac_linear *L, lorac_lora *l, const lorac_lora_config *c, lorac_rng *rng);
/* PEFT's init_lora_weights value as a string ("true", "pissa_niter_4", ...) into c. */
lorac_status lorac_lora_init_parse(const char *s, lorac_lora_config *c);
/* ... and back: the name PEFT writes (true and false are JSON booleans there). */
const char *lorac_lora_init_name(const lorac_lora_config *c, char *buf, size_t n);

#endif
