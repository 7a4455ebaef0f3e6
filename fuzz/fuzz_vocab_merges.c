/* fuzz_vocab_merges.c - libFuzzer target: vocab.json + merges.txt (byte-level BPE) or vocab.txt (WordPiece).
 * Built and run by scripts/fuzz; the logic is lorac_fuzz_vocab_merges (harness.h). */
#include "harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lorac_fuzz_vocab_merges(data, size); }
