/* fuzz_tokenizer_json.c - libFuzzer target: tokenizer.json with tokenizer_config.json / special_tokens_map.json.
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_tokenizer_json (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_tokenizer_json(data, size); }
