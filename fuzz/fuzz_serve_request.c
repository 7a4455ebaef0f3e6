/* fuzz_serve_request.c - libFuzzer target: lorac serve's request parser.
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_serve_request (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_serve_request(data, size); }
