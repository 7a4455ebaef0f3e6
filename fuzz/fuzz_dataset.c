/* fuzz_dataset.c - libFuzzer target: training data: TSV, CSV, JSONL, JSON, text, instruction data, gzip.
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_dataset (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_dataset(data, size); }
