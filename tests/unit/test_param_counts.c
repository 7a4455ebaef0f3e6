/* test_param_counts - trainable-parameter counts from a config alone
 * (random weights of the real shapes), printed as PEFT prints them.
 * Each expected count is derived here from the architecture (r * (in + out)
 * per adapted Linear) and must also equal the figure the issue / seed
 * reports: appendix E's 2,666,528 and PEFT's GPT-2 default 294,912, and the
 * DistilBERT-base figures of "Code LoRA from scratch" (147,456 / 516,096 /
 * 592,130 / 66,955,010), from distilbert-base-uncased's own config.json.
 * The rest of PEFT's LoRA family (DoRA, rank_pattern / alpha_pattern,
 * PiSSA, Gaussian init, LoRA on the embedding) is checked against the figures PEFT 0.21's
 * print_trainable_parameters() printed for GPT-2 124M
 * (tests/fixtures/parity/variants/gpt2_124m_counts.json, written by
 * tests/ref/make_peft_variant_fixtures.py). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "lora/lora.h"
#include "lora/lora_init.h"
#include "models/model.h"
#include "testutil.h"

static lorac_config gpt2_124m(void) {
    lorac_config c;
    memset(&c, 0, sizeof c);
    c.arch = LORAC_ARCH_GPT2;
    strcpy(c.model_type, "gpt2");
    c.vocab = 50257;
    c.n_ctx = 1024;
    c.dim = 768;
    c.n_layer = 12;
    c.n_head = 12;
    c.n_kv_head = 12;
    c.ffn_dim = 3072;
    c.norm_eps = 1e-5f;
    c.tied = 1;
    c.attn_bias = c.mlp_bias = 1;
    c.bos_id = c.eos_id = 50256;
    c.pad_id = -1;
    lorac_config_check(&c, "gpt2-124m");
    return c;
}

/* DistilBertForSequenceClassification on distilbert-base-uncased, 2 labels */
static lorac_model *distilbert_base(void) {
    lorac_config c;
    lorac_model *m = NULL;
    CHECK_OK(lorac_config_load_json(test_src_path("tests/fixtures/configs/distilbert-base-uncased.json"), &c));
    CHECK_OK(lorac_model_create_random(&c, 1, &m));
    if (m) CHECK_OK(lorac_model_add_head(m, 2, 1, LORAC_HEAD_INIT_HF, 1));
    return m;
}

static int64_t trainable(const lorac_model *m) {
    int64_t t, all;
    lorac_count_params(m, &t, &all);
    return t;
}

static void distilbert_counts(void) {
    const int64_t C = 768, F = 3072, L = 6, V = 30522, P = 512, r = 8;
    /* embeddings + LN, per layer 4 CxC + 2 MLP Linears + 2 LNs, head pre_classifier + classifier */
    const int64_t body = V * C + P * C + 2 * C + L * (4 * (C * C + C) + (C * F + F) + (F * C + C) + 4 * C);
    const int64_t head = (C * C + C) + (2 * C + 2);
    static const char *const qv[] = {"q_lin", "v_lin", NULL}, *const qvff[] = {"q_lin", "v_lin", "lin1", "lin2", NULL};
    const char *const *sets[2] = {qv, qvff};
    const int64_t expect[2] = {L * 2 * r * (C + C), L * (2 * r * (C + C) + r * (C + F) + r * (F + C))};
    const int64_t seed_figure[2] = {147456, 516096};
    for (int k = 0; k < 2; k++) {
        lorac_model *m = distilbert_base();
        if (!m) return;
        lorac_lora_config lc;
        lorac_lora_config_default(&lc);
        lc.r = (int)r;
        for (const char *const *t = sets[k]; *t; t++) strcpy(lc.targets[lc.n_targets++], *t);
        CHECK_OK(lorac_lora_apply(m, &lc, NULL));
        int64_t t = trainable(m);
        printf("DistilBERT LoRA r=8 on %s: %lld trainable\n", k ? "q_lin,v_lin,lin1,lin2" : "q_lin,v_lin", (long long)t);
        CHECK(t == expect[k] && t == seed_figure[k], "trainable %lld, formula %lld, the seed %lld", (long long)t,
              (long long)expect[k], (long long)seed_figure[k]);
        lorac_model_free(m);
    }
    lorac_model *m = distilbert_base();
    if (!m) return;
    CHECK_OK(lorac_make_last_layers_trainable(m, 2));
    printf("DistilBERT last two layers: %lld trainable\n", (long long)trainable(m));
    CHECK(trainable(m) == head && head == 592130, "last-layers:2 %lld, formula %lld, the seed 592,130", (long long)trainable(m),
          (long long)head);
    CHECK_OK(lorac_make_full_trainable(m));
    int64_t t, all;
    lorac_count_params(m, &t, &all);
    printf("DistilBERT full: %lld trainable of %lld\n", (long long)t, (long long)all);
    CHECK(t == all && all == body + head && all == 66955010, "full %lld, formula %lld, the seed 66,955,010", (long long)t,
          (long long)(body + head));
    lorac_model_free(m);
}

/* Each case of gpt2_124m_counts.json: its LoraConfig applied to GPT-2 124M. */
static void peft_family_counts(const lorac_config *c) {
    char *txt = NULL;
    CHECK_OK(lorac_read_file(test_src_path("tests/fixtures/parity/variants/gpt2_124m_counts.json"), 1 << 20, &txt, NULL));
    cJSON *j = txt ? cJSON_Parse(txt) : NULL, *cases = cJSON_GetObjectItem(j, "cases"), *e;
    free(txt);
    CHECK(cJSON_GetArraySize(cases) >= 5, "gpt2_124m_counts.json has %d cases", cJSON_GetArraySize(cases));
    lorac_model *m = NULL; /* one random GPT-2 124M, its adapters removed after each case */
    CHECK_OK(lorac_model_create_random(c, 1, &m));
    if (!m) return;
    cJSON_ArrayForEach(e, cases) {
        const cJSON *cfg = cJSON_GetObjectItem(e, "config"), *v, *k;
        lorac_lora_config lc;
        lorac_lora_config_default(&lc);
        lc.r = cJSON_GetObjectItem(cfg, "r")->valueint;
        lc.alpha = (float)cJSON_GetObjectItem(cfg, "lora_alpha")->valuedouble;
        cJSON_ArrayForEach(v, cJSON_GetObjectItem(cfg, "target_modules")) strcpy(lc.targets[lc.n_targets++], v->valuestring);
        lc.use_dora = cJSON_IsTrue(cJSON_GetObjectItem(cfg, "use_dora"));
        cJSON_ArrayForEach(k, cJSON_GetObjectItem(cfg, "rank_pattern")) {
            strcpy(lc.rank_pattern[lc.n_rank_pattern].key, k->string);
            lc.rank_pattern[lc.n_rank_pattern++].value = (float)k->valuedouble;
        }
        cJSON_ArrayForEach(k, cJSON_GetObjectItem(cfg, "alpha_pattern")) {
            strcpy(lc.alpha_pattern[lc.n_alpha_pattern].key, k->string);
            lc.alpha_pattern[lc.n_alpha_pattern++].value = (float)k->valuedouble;
        }
        if ((v = cJSON_GetObjectItem(cfg, "init_lora_weights")) && cJSON_IsString(v)) CHECK_OK(lorac_lora_init_parse(v->valuestring, &lc));
        CHECK_OK(lorac_lora_apply(m, &lc, NULL));
        int64_t t, all;
        lorac_count_params(m, &t, &all);
        const int64_t want_t = (int64_t)cJSON_GetObjectItem(e, "trainable")->valuedouble;
        const int64_t want_all = (int64_t)cJSON_GetObjectItem(e, "all")->valuedouble;
        printf("%-12s trainable params: %lld || all params: %lld   PEFT: %s\n", e->string, (long long)t, (long long)all,
               cJSON_GetObjectItem(e, "printed")->valuestring);
        CHECK(t == want_t && all == want_all, "%s: trainable %lld of %lld, PEFT %lld of %lld", e->string, (long long)t,
              (long long)all, (long long)want_t, (long long)want_all);
        for (int i = 0; i < m->n_lin; i++) {
            lorac_lora_free(m->lin[i].lora);
            m->lin[i].lora = NULL;
        }
        lorac_lora_free(m->wte_lora);
        m->wte_lora = NULL;
    }
    lorac_model_free(m);
    cJSON_Delete(j);
}

int main(void) {
    lorac_config c = gpt2_124m();
    peft_family_counts(&c);
    const int64_t C = 768, F = 3072, L = 12;
    /* the GPT-2 124M parameter count, tied head counted once */
    const int64_t base = 50257 * C + 1024 * C + L * (2 * C + C * 3 * C + 3 * C + C * C + C + 2 * C + C * F + F + F * C + C) + 2 * C;

    /* appendix E: LoRA r=16 alpha=16 on every Linear, incl. a new 2-class head;
     * its GPT model has separate W_query/W_key/W_value -> split c_attn */
    {
        lorac_model *m;
        CHECK_OK(lorac_model_create_random(&c, 1, &m));
        CHECK_OK(lorac_model_add_head(m, 2, 1, LORAC_HEAD_INIT_TORCH, 1));
        lorac_lora_config lc;
        lorac_lora_config_default(&lc);
        lc.r = 16;
        lc.alpha = 16;
        lc.split_fused = 1;
        strcpy(lc.targets[lc.n_targets++], "all-linear");
        strcpy(lc.targets[lc.n_targets++], "score");
        CHECK_OK(lorac_lora_apply(m, &lc, NULL));
        int64_t t, all;
        lorac_count_params(m, &t, &all);
        const int64_t r = 16;
        int64_t expect = L * (3 * r * (C + C) + r * (C + C) + r * (C + F) + r * (F + C)) + r * (C + 2);
        printf("appendix E: trainable params: %lld || all params: %lld || trainable%%: %.4f\n", (long long)t,
               (long long)all, 100.0 * t / all);
        CHECK(t == expect, "appendix E trainable %lld, formula %lld", (long long)t, (long long)expect);
        CHECK(t == 2666528, "appendix E trainable %lld, the seed reports 2,666,528", (long long)t);
        CHECK(all == base + (2 * C + 2) + t, "all params %lld", (long long)all);
        lorac_model_free(m);
    }
    /* PEFT's default for GPT-2: target c_attn, r=8 */
    {
        lorac_model *m;
        CHECK_OK(lorac_model_create_random(&c, 1, &m));
        lorac_lora_config lc;
        lorac_lora_config_default(&lc);
        strcpy(lc.targets[lc.n_targets++], "c_attn");
        CHECK_OK(lorac_lora_apply(m, &lc, NULL));
        int64_t t, all;
        lorac_count_params(m, &t, &all);
        printf("PEFT default: trainable params: %lld || all params: %lld || trainable%%: %.4f\n", (long long)t,
               (long long)all, 100.0 * t / all);
        CHECK(t == L * 8 * (C + 3 * C), "PEFT default trainable %lld", (long long)t);
        CHECK(t == 294912, "PEFT default trainable %lld, PEFT prints 294,912", (long long)t);
        CHECK(all == base + t, "all params %lld, base %lld", (long long)all, (long long)base);
        CHECK(base == 124439808, "GPT-2 124M has %lld params", (long long)base);
        /* target matching: suffix "c_proj" hits attn.c_proj and mlp.c_proj, a regex matches in full */
        lorac_lora_config q;
        lorac_lora_config_default(&q);
        strcpy(q.targets[q.n_targets++], "c_proj");
        int hits = 0;
        for (int i = 0; i < m->n_lin; i++) hits += lorac_lora_targets(&q, m, &m->lin[i]);
        CHECK(hits == 24, "c_proj matched %d modules", hits);
        lorac_lora_config_default(&q);
        strcpy(q.target_regex, "transformer\\.h\\.[01]\\.attn\\.c_attn");
        hits = 0;
        for (int i = 0; i < m->n_lin; i++) hits += lorac_lora_targets(&q, m, &m->lin[i]);
        CHECK(hits == 2, "regex matched %d modules", hits);
        strcpy(q.target_regex, "c_attn"); /* full match: a bare suffix matches nothing */
        hits = 0;
        for (int i = 0; i < m->n_lin; i++) hits += lorac_lora_targets(&q, m, &m->lin[i]);
        CHECK(hits == 0, "regex 'c_attn' matched %d modules", hits);
        lorac_lora_config_default(&q);
        strcpy(q.targets[q.n_targets++], "all-linear");
        q.layers[q.n_layers++] = 3;
        hits = 0;
        for (int i = 0; i < m->n_lin; i++) hits += lorac_lora_targets(&q, m, &m->lin[i]);
        CHECK(hits == 4, "all-linear in layer 3 matched %d modules", hits);
        lorac_model_free(m);
    }
    /* GPT2ForSequenceClassification under PEFT's SEQ_CLS default: c_attn r=8,
     * and the new score head (transformers': no bias) saved in full */
    {
        lorac_model *m;
        CHECK_OK(lorac_model_create_random(&c, 1, &m));
        CHECK_OK(lorac_model_add_head(m, 2, 0, LORAC_HEAD_INIT_HF, 1));
        lorac_lora_config lc;
        lorac_lora_config_default(&lc);
        strcpy(lc.targets[lc.n_targets++], "c_attn");
        strcpy(lc.modules_to_save[lc.n_modules_to_save++], "score");
        CHECK_OK(lorac_lora_apply(m, &lc, NULL));
        int64_t t, all;
        lorac_count_params(m, &t, &all);
        printf("PEFT SEQ_CLS default: trainable params: %lld || all params: %lld\n", (long long)t, (long long)all);
        CHECK(t == L * 8 * (C + 3 * C) + 2 * C, "SEQ_CLS trainable %lld", (long long)t);
        CHECK(m->head->b == NULL && all == base + t, "the HF score head has no bias (all %lld)", (long long)all);
        lorac_model_free(m);
    }
    distilbert_counts();
    return test_summary("test_param_counts");
}
