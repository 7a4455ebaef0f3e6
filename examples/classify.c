/* classify.c - label texts with a model and a classification adapter
 * (lorac train --task classify, or examples/train):
 *   classify MODEL ADAPTER_DIR TEXT...
 * prints, per text: the label, its probability, and the text.
 * TOKENIZER=PATH in the environment overrides the model's tokenizer. */
#include <lorac.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: classify MODEL ADAPTER_DIR TEXT...\n");
        return 2;
    }
    lorac_llm_opts o; /* TOKENIZER=PATH in the environment: another tokenizer than the model's */
    lorac_llm_opts_init(&o);
    o.tokenizer = getenv("TOKENIZER");
    lorac_llm *llm = NULL;
    if (lorac_llm_open(argv[1], &o, &llm) != LORAC_OK || lorac_llm_adapter_apply(llm, argv[2]) != LORAC_OK) {
        fprintf(stderr, "classify: %s\n", lorac_last_error());
        lorac_llm_close(llm);
        return 1;
    }
    lorac_llm_info info = {.size = sizeof info};
    lorac_llm_get_info(llm, &info);
    float probs[64];
    int rc = 0;
    for (int i = 3; i < argc && rc == 0; i++) {
        int label;
        if (info.n_classes > 64 || lorac_llm_classify(llm, argv[i], probs, 64, &label) != LORAC_OK) {
            fprintf(stderr, "classify: %s\n", lorac_last_error());
            rc = 1;
            break;
        }
        const char *name = lorac_llm_label(llm, label);
        printf("%s\t%.4f\t%s\n", name ? name : "?", probs[label], argv[i]);
    }
    lorac_llm_close(llm);
    return rc;
}
