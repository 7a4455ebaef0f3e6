/* test_parity - lorac's GPT-2, Llama, BERT and DistilBERT against
 * transformers + PEFT.
 *
 * Fixtures (tests/ref/make_model_fixtures.py, see tests/ref/README.md) hold a
 * tiny random model, a right-padded batch, the reference logits before and
 * after LoRA, the loss, every LoRA gradient, and 5 AdamW steps. Checked here
 * (the code is in tests/parity_common.c, shared with test_parity_archs):
 *  - base logits (1e-4 relative), and that injecting LoRA (B = 0) leaves the
 *    output bit-for-bit unchanged;
 *  - logits and loss with the reference LoRA weights (1e-4 relative);
 *  - every lora_A / lora_B gradient (1e-3 relative), the head's gradient for
 *    the classification fixtures, and that no frozen weight has a gradient;
 *  - the losses of 5 AdamW steps and the weights after them.
 * Encoders (tests/ref/make_encoder_fixtures.py) carry their classification
 * head in the checkpoint (BertForSequenceClassification /
 * DistilBertForSequenceClassification) and also check the last hidden state
 * of every row, padded rows included. */
#include "parity_common.h"
#include "testutil.h"

int main(void) {
    parity_run_fixture("tests/fixtures/models/tiny_gpt2", "tests/fixtures/parity/tiny_gpt2_lm.safetensors", 0);
    parity_run_fixture("tests/fixtures/models/tiny_llama", "tests/fixtures/parity/tiny_llama_lm.safetensors", 0);
    parity_run_fixture("tests/fixtures/models/tiny_llama_tied", "tests/fixtures/parity/tiny_llama_tied_lm.safetensors", 0);
    parity_run_fixture("tests/fixtures/models/tiny_gpt2", "tests/fixtures/parity/tiny_gpt2_cls.safetensors", 1);
    parity_run_fixture("tests/fixtures/models/tiny_llama", "tests/fixtures/parity/tiny_llama_cls.safetensors", 1);
    parity_run_fixture("tests/fixtures/models/tiny_bert", "tests/fixtures/parity/tiny_bert_cls.safetensors", 1);
    parity_run_fixture("tests/fixtures/models/tiny_distilbert", "tests/fixtures/parity/tiny_distilbert_cls.safetensors", 1);
    return test_summary("test_parity");
}
