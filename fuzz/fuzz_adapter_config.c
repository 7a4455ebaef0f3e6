/* fuzz_adapter_config.c - libFuzzer target: a PEFT adapter directory (adapter_config.json [+ adapter_model.safetensors]).
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_adapter_config (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_adapter_config(data, size); }
