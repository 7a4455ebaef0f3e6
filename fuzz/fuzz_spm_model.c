/* fuzz_spm_model.c - libFuzzer target: a SentencePiece tokenizer.model (protobuf).
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_spm_model (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_spm_model(data, size); }
