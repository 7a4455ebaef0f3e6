/* fuzz_gguf.c - libFuzzer target: a .gguf file (metadata, tensors, the config and tokenizer read from it).
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_gguf (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_gguf(data, size); }
