/* fuzz_cli_args.c - libFuzzer target: the lorac CLI's option parser.
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_cli_args (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_cli_args(data, size); }
