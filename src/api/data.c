/* data.c - lorac_data_config -> tokenized train / validation / test sets.
 *
 * The split rules are lorac train's: with separate val / test files, data
 * is the training set (shuffled); with a test file and split fractions,
 * validation is carved from data; otherwise data is split train_frac /
 * val_frac / rest after an optional balance. Labels of later files follow
 * the training set's order. max_examples caps training, max_eval samples
 * the evaluation sets at random (files are often sorted by label). */
#include "api/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_chat.h"
#include "lora/lora.h"

lorac_status lorac_api_task(const char *t, lorac_task *out) {
    if (!t || !strcmp(t, "classify")) *out = LORAC_TASK_CLS;
    else if (!strcmp(t, "lm")) *out = LORAC_TASK_LM;
    else if (!strcmp(t, "instruct")) *out = LORAC_TASK_INSTRUCT;
    else return lorac_fail(LORAC_ERR_ARG, "task '%s': expected classify, lm or instruct", t);
    return LORAC_OK;
}

static lorac_status load_one(const lorac_data_config *c, lorac_task task, const char *path, const char *const *labels,
                             lorac_dataset *d, int *skipped) {
    if (task == LORAC_TASK_LM) {
        LORAC_TRY(lorac_dataset_load_text(path, d));
    } else if (task == LORAC_TASK_INSTRUCT) {
        LORAC_TRY(lorac_dataset_load_instructions(path, d));
    } else {
        lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
        o.format = c->format;
        o.text_col = c->text_col;
        o.label_col = c->label_col;
        o.label_order = labels;
        o.skip_bad = c->skip_bad_rows;
        LORAC_TRY(lorac_dataset_load(path, &o, d));
        *skipped = d->n_skipped;
    }
    if (d->n == 0) {
        lorac_dataset_free(d);
        return lorac_fail(LORAC_ERR_DATA, "%s: no examples; hint: check the file and --format/--text-col", path);
    }
    return LORAC_OK;
}

/* The label order of d, NULL-terminated, in names[0..64]. */
static const char *const *label_list(const lorac_dataset *d, const char **names) {
    int k = d->n_labels < 64 ? d->n_labels : 64;
    for (int i = 0; i < k; i++) names[i] = d->label_names[i];
    names[k] = NULL;
    return names;
}

static lorac_status replace_subset(lorac_dataset *d, int n) {
    lorac_dataset sub;
    LORAC_TRY(lorac_dataset_subset(d, n, &sub));
    lorac_dataset_free(d);
    *d = sub;
    return LORAC_OK;
}

lorac_status lorac_api_split(const lorac_data_config *c, lorac_task task, uint64_t seed, lorac_dataset s[3],
                             int skipped[3]) {
    memset(s, 0, 3 * sizeof *s);
    skipped[0] = skipped[1] = skipped[2] = 0;
    if (!c->data) return lorac_fail(LORAC_ERR_ARG, "data: no file given");
    char lab[LORAC_MAX_TARGETS][96];
    const char *labels[LORAC_MAX_TARGETS + 1];
    int nl = 0;
    if (c->labels) {
        LORAC_TRY(lorac_lora_parse_list(c->labels, lab, &nl, "labels"));
        for (int i = 0; i < nl; i++) labels[i] = lab[i];
        labels[nl] = NULL;
    }
    lorac_dataset all;
    LORAC_TRY(load_one(c, task, c->data, nl ? labels : NULL, &all, &skipped[0]));
    if (c->whole) {
        s[2] = all;
        return LORAC_OK;
    }
    lorac_status st = LORAC_OK;
    if (c->balance) {
        if (task != LORAC_TASK_CLS) st = lorac_fail(LORAC_ERR_ARG, "balance needs the classify task");
        else st = lorac_dataset_balance(&all, seed);
    }
    double tr = c->split_train > 0 ? c->split_train : 0.7, va = c->split_train > 0 ? c->split_val : 0.1;
    if (st == LORAC_OK && (tr <= 0 || va < 0 || tr + va > 1))
        st = lorac_fail(LORAC_ERR_ARG, "split %g,%g: expected two fractions like 0.7,0.1 summing to at most 1", tr, va);
    if (st != LORAC_OK) {
        lorac_dataset_free(&all);
        return st;
    }
    const int cls = task == LORAC_TASK_CLS;
    if (c->test && !c->val && c->split_train > 0) { /* a test file, and validation carved out of data */
        st = lorac_dataset_split(&all, tr, va, seed, 1, &s[0], &s[1], NULL);
        lorac_dataset_free(&all);
        if (st == LORAC_OK) st = load_one(c, task, c->test, cls ? label_list(&s[0], labels) : NULL, &s[2], &skipped[2]);
    } else if (c->val || c->test) { /* explicit files: data is the training set */
        s[0] = all;
        if (c->val) st = load_one(c, task, c->val, cls ? label_list(&all, labels) : NULL, &s[1], &skipped[1]);
        if (st == LORAC_OK && c->test) st = load_one(c, task, c->test, cls ? label_list(&all, labels) : NULL, &s[2], &skipped[2]);
        lorac_dataset_shuffle(&s[0], seed);
    } else {
        st = lorac_dataset_split(&all, tr, va, seed, 1, &s[0], &s[1], &s[2]);
        lorac_dataset_free(&all);
    }
    if (st == LORAC_OK && c->max_examples > 0 && c->max_examples < s[0].n) st = replace_subset(&s[0], c->max_examples);
    for (int k = 1; k < 3 && st == LORAC_OK && c->max_eval > 0; k++) {
        if (s[k].n <= c->max_eval) continue;
        lorac_dataset_shuffle(&s[k], seed + (uint64_t)k);
        st = replace_subset(&s[k], c->max_eval);
    }
    if (st == LORAC_OK && cls && s[0].n_labels < 2)
        st = lorac_fail(LORAC_ERR_DATA, "%s: only %d distinct label(s); hint: a classifier needs 2 or more", c->data,
                        s[0].n_labels);
    if (st != LORAC_OK)
        for (int i = 0; i < 3; i++) lorac_dataset_free(&s[i]);
    return st;
}

lorac_status lorac_api_data_load(lorac_llm *llm, const lorac_data_config *c, uint64_t seed, lorac_api_data *out) {
    memset(out, 0, sizeof *out);
    API_NEED(c->data, "lorac data");
    LORAC_TRY(lorac_api_task(c->task, &out->task));
    const int n_ctx = llm->m->cfg.n_ctx;
    const int max_len = c->max_len > 0 ? c->max_len : 256 < n_ctx ? 256 : n_ctx;
    if (max_len < 2 || max_len > n_ctx)
        return lorac_fail(LORAC_ERR_ARG, "max_len %d: expected 2..%d (the model's context)", max_len, n_ctx);
    lorac_chat_format chat;
    char where[1200];
    if (out->task == LORAC_TASK_INSTRUCT) LORAC_TRY(lorac_api_chat_format(llm, c->chat_format, &chat, where, sizeof where));
    out->max_len = max_len;
    if (out->task == LORAC_TASK_INSTRUCT) { /* what the caller may show: lorac_llm_chat's info */
        lorac_chat_info *ci = &out->chat;
        out->has_chat = 1;
        snprintf(ci->family, sizeof ci->family, "%s", lorac_chat_family_name(chat.family));
        snprintf(ci->source, sizeof ci->source, "%s", where);
        ci->from_template = chat.from_template;
        snprintf(ci->default_system, sizeof ci->default_system, "%s", chat.default_system);
        ci->end_of_turn = lorac_chat_end_of_turn(&chat, llm->tok.t);
        ci->writes_bos = 1;
    }
    lorac_status st = lorac_api_split(c, out->task, seed, out->set, out->skipped);
    for (int i = 0; i < 3 && st == LORAC_OK; i++)
        if (out->set[i].n)
            st = lorac_tokenize_dataset(llm->tok.t, &out->set[i], out->task, max_len,
                                        out->task == LORAC_TASK_INSTRUCT ? &chat : NULL, &out->tok[i]);
    if (st != LORAC_OK) lorac_api_data_free(out);
    return st;
}

void lorac_api_data_free(lorac_api_data *s) {
    for (int i = 0; i < 3; i++) {
        lorac_dataset_free(&s->set[i]);
        lorac_tokenized_free(&s->tok[i]);
    }
}
