/* train.c - fine-tune a LoRA classifier (or LM) on a data file and save the
 * adapter, printing progress; stops early after MAX_STEPS steps.
 *   train MODEL DATA OUT_DIR [MAX_STEPS] [classify|lm]
 * The progress callback could return non-zero to cancel.
 * TOKENIZER=PATH in the environment overrides the model's tokenizer. */
#include <lorac.h>
#include <stdio.h>
#include <stdlib.h>

static int on_progress(const lorac_train_progress *p, void *user) {
    (void)user;
    if (!p->is_eval) printf("step %d/%d loss %.4f lr %.2e %.0f tok/s\n", p->step, p->total_steps, p->loss, p->lr, p->tokens_per_s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: train MODEL DATA OUT_DIR [MAX_STEPS] [classify|lm]\n");
        return 2;
    }
    lorac_llm_opts o; /* TOKENIZER=PATH in the environment: another tokenizer than the model's */
    lorac_llm_opts_init(&o);
    o.tokenizer = getenv("TOKENIZER");
    lorac_llm *llm;
    if (lorac_llm_open(argv[1], &o, &llm) != LORAC_OK) {
        fprintf(stderr, "train: %s\n", lorac_last_error());
        return 1;
    }
    lorac_train_config c;
    lorac_train_config_init(&c);
    c.data.data = argv[2];
    c.data.task = argc > 5 ? argv[5] : "classify";
    c.max_steps = argc > 4 ? atoi(argv[4]) : 0;
    c.r = 4;
    c.lr = 2e-3f;
    c.batch = 4;
    c.progress = on_progress;
    lorac_train_report r;
    lorac_status st = lorac_llm_train(llm, &c, &r);
    if (st == LORAC_OK) st = lorac_llm_adapter_save(llm, argv[3]);
    if (st != LORAC_OK) {
        fprintf(stderr, "train: %s\n", lorac_last_error());
    } else {
        printf("trained %d steps in %.1f s, loss %.4f; test: %d examples, loss %.4f", r.steps, r.seconds, r.final_loss,
               r.test.n, r.test.loss);
        if (r.test.acc >= 0) printf(", accuracy %.2f%%", 100 * r.test.acc);
        printf("\nadapter saved to %s\n", argv[3]);
    }
    lorac_llm_close(llm);
    return st == LORAC_OK ? 0 : 1;
}
