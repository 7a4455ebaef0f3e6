/* fuzz_config_json.c - libFuzzer target: a model's config.json.
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_config_json (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_config_json(data, size); }
