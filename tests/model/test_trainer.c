/* test_trainer - the training loop on the tiny Llama fixture with a LoRA
 * adapter and a classification head:
 *  - gradient accumulation: batch 4 x 2 micro-batches gives the same
 *    updates as batch 8 (same examples, same order);
 *  - the same seed gives bit-identical results twice;
 *  - a diverging run (absurd learning rate) stops with LORAC_ERR_NUMERIC
 *    and a message naming the step; --skip-nonfinite goes on instead. */
#include <stdlib.h>
#include <string.h>

#include "lora/lora.h"
#include "models/model.h"
#include "testutil.h"
#include "train/trainer.h"

static lorac_model *fresh(void) {
    lorac_model *m = NULL;
    CHECK_OK(lorac_model_load(test_src_path("tests/fixtures/models/tiny_llama"), &m));
    CHECK_OK(lorac_model_add_head(m, 2, 1, LORAC_HEAD_INIT_TORCH, 3));
    lorac_lora_config c;
    lorac_lora_config_default(&c);
    c.r = 4;
    c.alpha = 8;
    strcpy(c.targets[c.n_targets++], "all-linear");
    strcpy(c.modules_to_save[c.n_modules_to_save++], "score");
    CHECK_OK(lorac_lora_apply(m, &c, NULL));
    /* non-zero B so the LoRA path matters from the first step */
    for (int i = 0; i < m->n_lin; i++)
        if (m->lin[i].lora)
            for (size_t k = 0; k < m->lin[i].lora->B.n; k++) m->lin[i].lora->B.data[k] = 0.01f * (float)((int)(k % 7) - 3);
    return m;
}

static lorac_status run(lorac_model *m, const lorac_tokenized *d, int bs, int accum, float lr, int skip, lorac_train_result *r) {
    lorac_train_opts o;
    lorac_train_opts_default(&o);
    o.task = LORAC_TASK_CLS;
    o.batch_size = bs;
    o.grad_accum = accum;
    o.lr = lr;
    o.weight_decay = 0.1f;
    o.epochs = 1;
    o.seed = 9;
    o.skip_nonfinite = skip;
    return lorac_train(m, d, NULL, &o, r);
}

static int same_lora(const lorac_model *a, const lorac_model *b, double tol) {
    for (int i = 0; i < a->n_lin; i++) {
        const lorac_lora *x = a->lin[i].lora, *y = b->lin[i].lora;
        if (!x) continue;
        for (size_t k = 0; k < x->A.n; k++)
            if (fabs(x->A.data[k] - y->A.data[k]) > tol) return 0;
        for (size_t k = 0; k < x->B.n; k++)
            if (fabs(x->B.data[k] - y->B.data[k]) > tol) return 0;
    }
    return 1;
}

int main(void) {
    lorac_tokenized d = test_random_tokenized(16, 103, 5);
    lorac_train_result r1, r2, r3;
    lorac_model *a = fresh(), *b = fresh(), *c = fresh();
    CHECK_OK(run(a, &d, 8, 1, 1e-2f, 0, &r1));
    CHECK_OK(run(b, &d, 4, 2, 1e-2f, 0, &r2));
    CHECK(r1.steps == 2 && r2.steps == 2, "steps %d and %d", r1.steps, r2.steps);
    CHECK(fabs(r1.final_loss - r2.final_loss) < 1e-5, "loss %.7f (batch 8) vs %.7f (4 x 2)", r1.final_loss, r2.final_loss);
    CHECK(same_lora(a, b, 1e-5), "weights after batch 8 and after 4 x 2 accumulation differ");
    CHECK_OK(run(c, &d, 8, 1, 1e-2f, 0, &r3));
    CHECK(r3.final_loss == r1.final_loss && same_lora(a, c, 0), "the same seed did not repeat the run exactly");
    lorac_model_free(a);
    lorac_model_free(b);
    lorac_model_free(c);

    lorac_model *e = fresh();
    lorac_train_result re;
    lorac_status st = run(e, &d, 2, 1, 1e30f, 0, &re);
    CHECK(st == LORAC_ERR_NUMERIC && strstr(lorac_last_error(), "step"), "diverging run: status %d, '%s'", st, lorac_last_error());
    lorac_model_free(e);
    e = fresh();
    st = run(e, &d, 2, 1, 1e30f, 1, &re);
    CHECK(st == LORAC_OK, "--skip-nonfinite run stopped: %s", lorac_last_error());
    lorac_model_free(e);
    lorac_tokenized_free(&d);
    return test_summary("test_trainer");
}
