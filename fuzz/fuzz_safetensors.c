/* fuzz_safetensors.c - libFuzzer target: a .safetensors file, or model.safetensors.index.json and its shards.
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_safetensors (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_safetensors(data, size); }
