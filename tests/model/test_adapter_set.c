/* test_adapter_set - several adapters over one base (lora/adapter_set.h).
 *
 * With tiny_llama and the PEFT-written adapter fixture:
 *  - an adapter loaded into a set and activated gives exactly the logits of
 *    the same adapter loaded alone (lorac_adapter_load), which test_merge
 *    checks against PEFT's own logits;
 *  - "none" gives exactly the base model's logits, and switching back and
 *    forth changes nothing;
 *  - combinations follow PEFT's add_weighted_adapter arithmetic: two copies
 *    of one adapter combined with "cat" at weights 0.5/0.5, or with
 *    "linear" at 0.25/0.25, reproduce that adapter (same delta W = s B A);
 *    "cat" at 1/1 doubles the delta, checked against the merged weights;
 *  - a classifier adapter (with its own head) loaded after LM adapters, and
 *    an LM adapter loaded after it, leave every adapter's logits as they
 *    were (the head Linear the classifier adds lengthens the tables);
 *    unloading one adapter leaves the others;
 *  - the limits are errors: an unknown name, a name used twice, "linear"
 *    over different ranks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/adapter_io.h"
#include "lora/adapter_set.h"
#include "lora/merge.h"
#include "models/model.h"
#include "testutil.h"

#define MODEL "tests/fixtures/models/tiny_llama"
#define ADAPTER "tests/fixtures/parity/tiny_llama_peft_adapter"

enum { B = 2, T = 6 };
static const int ids[B * T] = {1, 5, 9, 13, 17, 21, 2, 4, 8, 16, 32, 64};

static float *logits(lorac_model *m) {
    CHECK_OK(lorac_model_forward(m, ids, NULL, B, T, LORAC_FWD_LM));
    size_t n = (size_t)B * T * m->cfg.vocab;
    float *out = malloc(sizeof(float) * n);
    memcpy(out, m->acts.logits, sizeof(float) * n);
    return out;
}

static int same(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

int main(void) {
    lorac_model *m = NULL, *alone = NULL;
    CHECK_OK(lorac_model_load(test_src_path(MODEL), &m));
    CHECK_OK(lorac_model_load(test_src_path(MODEL), &alone));
    if (!m || !alone) return test_summary("test_adapter_set");
    const size_t n = (size_t)B * T * m->cfg.vocab;
    float *base = logits(m);
    CHECK_OK(lorac_adapter_load(alone, test_src_path(ADAPTER), NULL));
    float *want = logits(alone);
    CHECK(!same(base, want, n), "the adapter fixture changes nothing; the test would prove nothing");

    lorac_adapter_set s;
    lorac_adapters_init(&s, m);
    CHECK_OK(lorac_adapters_load(&s, "a", test_src_path(ADAPTER)));
    CHECK_OK(lorac_adapters_load(&s, "b", test_src_path(ADAPTER)));
    CHECK(s.active == -1, "loading must not activate (active %d)", s.active);
    float *got = logits(m);
    CHECK(same(got, base, n), "after loading, before activating: not the base logits");
    free(got);
    const char *order[] = {"a", "none", "b", "a", "none"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        double t0 = lorac_now();
        CHECK_OK(lorac_adapters_activate(&s, order[i]));
        double dt = lorac_now() - t0;
        got = logits(m);
        const int is_none = !strcmp(order[i], "none");
        CHECK(same(got, is_none ? base : want, n), "active '%s': logits differ from %s", order[i],
              is_none ? "the base model" : "the adapter loaded alone");
        free(got);
        if (i == 0) printf("switch to '%s': %.1f us\n", order[i], dt * 1e6);
    }

    /* combinations of two copies that must reproduce the adapter */
    const char *ab[2] = {"a", "b"};
    const float half[2] = {0.5f, 0.5f}, quarter[2] = {0.25f, 0.25f}, one[2] = {1, 1};
    CHECK_OK(lorac_adapters_combine(&s, "cat_half", ab, half, 2, "cat"));
    CHECK_OK(lorac_adapters_combine(&s, "lin_quarter", ab, quarter, 2, "linear"));
    CHECK_OK(lorac_adapters_combine(&s, "cat_one", ab, one, 2, "cat"));
    const char *same_as_a[2] = {"cat_half", "lin_quarter"};
    for (int k = 0; k < 2; k++) {
        CHECK_OK(lorac_adapters_activate(&s, same_as_a[k]));
        got = logits(m);
        test_close(same_as_a[k], got, want, n, 1e-4, 1e-5);
        free(got);
    }
    CHECK(s.slot[lorac_adapters_find(&s, "cat_half")].cfg.r == 2 * s.slot[0].cfg.r, "cat: r should add up");
    CHECK(s.slot[lorac_adapters_find(&s, "lin_quarter")].cfg.r == s.slot[0].cfg.r, "linear: r should stay");

    /* cat at 1/1 = twice the delta: compare with the base merged twice */
    CHECK_OK(lorac_adapters_activate(&s, "cat_one"));
    got = logits(m);
    CHECK_OK(lorac_lora_merge(alone));
    lorac_lora_unmerge(alone); /* back to W, the adapter unmerged */
    for (int i = 0; i < alone->n_lin; i++)
        if (alone->lin[i].lora) alone->lin[i].lora->scale *= 2;
    float *twice = logits(alone);
    test_close("cat 1/1 = 2 x delta", got, twice, n, 1e-4, 1e-5);
    free(twice);
    free(got);

    /* a classifier after LM adapters, an LM adapter after it, then unloading */
    lorac_model *cm = NULL;
    CHECK_OK(lorac_model_load(test_src_path(MODEL), &cm));
    if (cm) {
        lorac_lora_config cc;
        lorac_lora_config_default(&cc);
        snprintf(cc.modules_to_save[0], sizeof cc.modules_to_save[0], "score");
        cc.n_modules_to_save = 1;
        CHECK_OK(lorac_model_add_head(cm, 3, 0, LORAC_HEAD_INIT_HF, 7));
        CHECK_OK(lorac_lora_apply(cm, &cc, NULL));
        CHECK_OK(lorac_weight_make_trainable(cm->head->W));
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/cls", test_tmpdir());
        const lorac_adapter_meta meta = {"tiny_llama", "SEQ_CLS", 3, NULL};
        CHECK_OK(lorac_adapter_save(cm, &cc, &meta, dir));
        const int n_lin = m->n_lin;
        CHECK_OK(lorac_adapters_load(&s, "cls", dir));
        CHECK(m->n_lin == n_lin + 1 && s.n_lin == m->n_lin, "the classifier's head Linear: n_lin %d -> %d, tables %d", n_lin,
              m->n_lin, s.n_lin);
        CHECK_OK(lorac_adapters_load(&s, "c", test_src_path(ADAPTER)));
        const char *lm[] = {"a", "c", "b"};
        for (int k = 0; k < 3; k++) {
            CHECK_OK(lorac_adapters_activate(&s, lm[k]));
            got = logits(m);
            CHECK(same(got, want, n), "'%s' after a classifier was loaded: logits changed", lm[k]);
            free(got);
        }
        CHECK_OK(lorac_adapters_activate(&s, "cls"));
        CHECK_OK(lorac_model_forward(m, ids, NULL, B, T, LORAC_FWD_CLS));
        CHECK(m->n_classes == 3, "the classifier's head has %d classes", m->n_classes);
        CHECK_OK(lorac_adapters_activate(&s, "a"));
        const int before = s.n;
        CHECK_OK(lorac_adapters_unload(&s, "b"));
        CHECK(s.n == before - 1 && lorac_adapters_find(&s, "b") < 0 && s.active == lorac_adapters_find(&s, "a"),
              "unload b: %d adapters, active %d", s.n, s.active);
        got = logits(m);
        CHECK(same(got, want, n), "the active adapter changed when another was unloaded");
        free(got);
        CHECK(lorac_adapters_unload(&s, "b") == LORAC_ERR_ARG, "unloading an unknown adapter accepted");
        CHECK_OK(lorac_adapters_unload(&s, "cls"));
        CHECK_OK(lorac_adapters_unload(&s, "c"));
        lorac_model_free(cm);
    }

    /* errors */
    CHECK(lorac_adapters_activate(&s, "nope") == LORAC_ERR_ARG, "unknown adapter accepted");
    CHECK(lorac_adapters_load(&s, "a", test_src_path(ADAPTER)) == LORAC_ERR_ARG, "duplicate name accepted");
    const char *ac[2] = {"a", "cat_one"};
    CHECK(lorac_adapters_combine(&s, "bad", ac, one, 2, "linear") == LORAC_ERR_ARG, "linear over r and 2r accepted");
    CHECK(lorac_adapters_combine(&s, "bad", ab, one, 2, "ties") == LORAC_ERR_ARG, "unknown combination accepted");
    lorac_clear_error();
    printf("adapters: %d, %.1f KiB of adapter tensors\n", s.n, lorac_adapters_bytes(&s) / 1024.0);

    lorac_adapters_free(&s);
    got = logits(m);
    CHECK(same(got, base, n), "after freeing the set the model is not the base");
    free(got);
    free(base);
    free(want);
    lorac_model_free(m);
    lorac_model_free(alone);
    return test_summary("test_adapter_set");
}
