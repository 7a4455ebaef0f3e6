/* parity_common.h - the checks of tests/model/test_parity.c, shared with
 * test_parity_archs.c: one fixture written by tests/ref/make_model_fixtures.py,
 * make_encoder_fixtures.py or make_arch_fixtures.py (layout in
 * tests/ref/README.md) against lorac's model loaded from model_dir.
 *
 * parity_run_fixture checks, each failure naming the fixture, the tensor and
 * the worst element (batch row / position / vocab id for logits) with the
 * max absolute error:
 *  - base logits at the real (attention_mask == 1) positions, 1e-4 relative
 *    (LM), or the classifier logits (cls); injecting LoRA (B = 0) must leave
 *    the output bit-for-bit unchanged; as many LoRA layers as the fixture has;
 *  - logits and loss with the fixture's LoRA weights (1e-4 relative);
 *  - every lora_A / lora_B gradient (1e-3 relative), the head's gradient for
 *    the classification fixtures, and that no frozen weight has a gradient;
 *  - the losses of 5 AdamW steps and the weights after them (1e-3).
 * cls = 1 for a classification fixture (a decoder gets a new Linear(dim, 2)
 * head with the fixture's score.weight / score.bias; an encoder uses its
 * checkpoint's head and also checks the last hidden state of every row). */
#ifndef LORAC_PARITY_COMMON_H
#define LORAC_PARITY_COMMON_H

void parity_run_fixture(const char *model_dir, const char *fixture, int cls);

/* Compare LM logits [B,T,V] only at positions with mask[b*T+t] != 0; one
 * pass/fail for all of them. On failure prints "<label>: worst at b=.. t=..
 * v=..: got .. want .. (max |diff| .., N of M elements out of tolerance)". */
int parity_close_rows(const char *label, const float *got, const float *want, const unsigned char *mask, int B, int T,
                      int V, double rtol, double atol);

#endif
