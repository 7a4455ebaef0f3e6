#include "cli_data.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_chat.h"
#include "api/data.h"
#include "core/util.h"

static lorac_task parse_task(const cli_args *a) {
    const char *t = cli_str(a, "task", "classify");
    if (!strcmp(t, "classify")) return LORAC_TASK_CLS;
    if (!strcmp(t, "lm")) return LORAC_TASK_LM;
    if (!strcmp(t, "instruct")) return LORAC_TASK_INSTRUCT;
    cli_die(a->cmd, EXIT_USAGE, "--task '%s': expected classify, lm or instruct", t);
}

/* --chat-format's family (a usage error for a bad name); NULL name = auto. */
static const char *chat_format_opt(const cli_args *a, lorac_chat_family *fam) {
    const char *name = cli_str(a, "chat-format", "auto");
    *fam = LORAC_CHAT_ALPACA;
    if (strcmp(name, "auto") && lorac_chat_family_parse(name, fam) != LORAC_OK)
        cli_die(a->cmd, EXIT_USAGE, "--chat-format '%s': expected auto, chatml, llama3, gemma, phi3, mistral, llama2 or "
                "alpaca", name);
    return strcmp(name, "auto") ? name : NULL;
}

void cli_load_splits(const cli_args *a, cli_splits *s, int whole) {
    memset(s, 0, sizeof *s);
    s->task = parse_task(a);
    lorac_chat_family fam;
    (void)chat_format_opt(a, &fam); /* a bad --chat-format is a usage error before any work */
    lorac_data_config c = {0};
    c.data = cli_str(a, "data", NULL);
    if (!c.data) cli_die(a->cmd, EXIT_USAGE, "--data is required");
    c.labels = cli_str(a, "labels", NULL);
    if (c.labels) { /* the syntax, with the flag's name */
        char lab[LORAC_MAX_TARGETS][96];
        int nl = 0;
        cli_check(a->cmd, lorac_lora_parse_list(c.labels, lab, &nl, "--labels"));
    }
    c.format = cli_str(a, "format", NULL);
    c.text_col = cli_str(a, "text-col", NULL);
    c.label_col = cli_str(a, "label-col", NULL);
    c.skip_bad_rows = cli_has(a, "skip-bad-rows");
    c.whole = whole;
    const uint64_t seed = cli_u64(a, "seed", 123);
    if (!whole) {
        c.balance = cli_has(a, "balance");
        if (c.balance && s->task != LORAC_TASK_CLS) cli_die(a->cmd, EXIT_USAGE, "--balance needs --task classify");
        c.val = cli_str(a, "val", NULL);
        c.test = cli_str(a, "test", NULL);
        const char *sp = cli_str(a, "split", NULL);
        if (sp && (sscanf(sp, "%lf,%lf", &c.split_train, &c.split_val) != 2 || c.split_train <= 0 || c.split_val < 0 ||
                   c.split_train + c.split_val > 1))
            cli_die(a->cmd, EXIT_USAGE, "--split '%s': expected two fractions like 0.7,0.1 summing to at most 1", sp);
        c.max_examples = cli_int(a, "max-examples", 0, 0, 1 << 30);
        c.max_eval = cli_int(a, "max-eval", 0, 0, 1 << 30);
    }
    lorac_dataset set[3];
    int skipped[3];
    const lorac_status st = lorac_api_split(&c, s->task, seed, set, skipped);
    const char *files[3] = {c.data, c.val, c.test};
    for (int i = 0; i < 3; i++)
        if (skipped[i]) fprintf(stderr, "%s: skipped %d bad rows\n", files[i], skipped[i]);
    cli_check(a->cmd, st);
    s->train = set[0];
    s->val = set[1];
    s->test = set[2];
    if (whole) { /* every row of --data is the test set (lorac eval without --split) */
        fprintf(stderr, "examples: test %d (every row of %s)\n", s->test.n, c.data);
        return;
    }
    if (s->task == LORAC_TASK_CLS) {
        fprintf(stderr, "labels:");
        for (int i = 0; i < s->train.n_labels; i++)
            fprintf(stderr, " %d=%s (%d)", i, s->train.label_names[i], lorac_dataset_count(&s->train, i));
        fputc('\n', stderr);
    }
    fprintf(stderr, "examples: train %d, val %d, test %d\n", s->train.n, s->val.n, s->test.n);
}

void cli_splits_free(cli_splits *s) {
    lorac_dataset_free(&s->train);
    lorac_dataset_free(&s->val);
    lorac_dataset_free(&s->test);
}

void cli_chat_format(const cli_args *a, const lorac_llm *llm, lorac_chat_format *f) {
    lorac_chat_family fam;
    const char *name = chat_format_opt(a, &fam);
    char where[1200];
    cli_check(a->cmd, lorac_api_chat_format(llm, name, f, where, sizeof where));
    fprintf(stderr, "chat format: %s (%s)%s%s%s\n", lorac_chat_family_name(f->family),
            f->from_template ? where : !name ? "the model has no chat template" : "--chat-format",
            f->default_system[0] ? "; default system message \"" : "", f->default_system,
            f->default_system[0] ? "\"" : "");
}

void cli_tokenize_splits(const cli_args *a, const cli_splits *s, const lorac_llm *llm, cli_tokenized *t) {
    const lorac_model *m = llm->m;
    const lorac_tokenizer *tok = llm->tok.t;
    memset(t, 0, sizeof *t);
    int max_len = cli_int(a, "max-len", 256 < m->cfg.n_ctx ? 256 : m->cfg.n_ctx, 2, m->cfg.n_ctx);
    const lorac_dataset *d[3] = {&s->train, &s->val, &s->test};
    lorac_tokenized *o[3] = {&t->train, &t->val, &t->test};
    static const char *names[3] = {"train", "val", "test"};
    lorac_chat_format chat;
    if (s->task == LORAC_TASK_INSTRUCT) cli_chat_format(a, llm, &chat);
    for (int i = 0; i < 3; i++) {
        if (d[i]->n == 0) continue;
        cli_check(a->cmd, lorac_tokenize_dataset(tok, d[i], s->task, max_len,
                                                 s->task == LORAC_TASK_INSTRUCT ? &chat : NULL, o[i]));
        if (o[i]->n_truncated)
            fprintf(stderr, "%s: %d of %d examples truncated to %d tokens\n", names[i], o[i]->n_truncated, o[i]->n, max_len);
    }
}

void cli_tokenized_free(cli_tokenized *t) {
    lorac_tokenized_free(&t->train);
    lorac_tokenized_free(&t->val);
    lorac_tokenized_free(&t->test);
}

void cli_eval_splits(const cli_args *a, int want[3]) {
    static const char *const names[3] = {"train", "val", "test"};
    const char *list = cli_str(a, "eval-splits", NULL);
    want[0] = want[1] = want[2] = list == NULL;
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (len == strlen(names[i]) && !strncmp(p, names[i], len)) k = i;
        if (k < 0)
            cli_die(a->cmd, EXIT_USAGE, "--eval-splits '%s': '%.*s' is not a split; hint: any of train,val,test, "
                    "separated by commas", list, (int)len, p);
        want[k] = 1;
        p += len + (p[len] == ',');
    }
}

void cli_evaluate_splits(const cli_args *a, lorac_model *m, const cli_tokenized *t, lorac_task task, int batch,
                         cli_results *r) {
    const lorac_tokenized *d[3] = {&t->train, &t->val, &t->test};
    memset(r, 0, sizeof *r);
    int want[3];
    cli_eval_splits(a, want);
    const double t0 = lorac_now();
    for (int i = 0; i < 3; i++) {
        r->n[i] = d[i]->n;
        r->acc[i] = -1;
        r->loss[i] = NAN;
        if (d[i]->n == 0 || !want[i]) continue;
        r->scored[i] = 1;
        cli_check(a->cmd, lorac_evaluate_dist(m, d[i], task, batch, cli_dist, &r->loss[i], &r->acc[i]));
    }
    r->eval_seconds = lorac_now() - t0;
}

void cli_print_results(const cli_args *a, const cli_results *r, const cli_splits *s) {
    static const char *names[3] = {"train", "val", "test"};
    if (cli_has(a, "json")) {
        printf("{");
        for (int i = 0; i < 3; i++) {
            if (r->acc[i] >= 0) printf("\"%s_acc\":%.6f,", names[i], r->acc[i]);
            if (!isnan(r->loss[i])) printf("\"%s_loss\":%.6f,", names[i], r->loss[i]);
            printf("\"%s_n\":%d,", names[i], r->n[i]);
        }
        if (r->ranks > 1)
            printf("\"ranks\":%d,\"comm_seconds\":%.3f,\"comm_wait_seconds\":%.3f,\"comm_bytes_per_step\":%.0f,",
                   r->ranks, r->comm_seconds, r->comm_wait_seconds, r->comm_bytes_per_step);
        printf("\"trainable_params\":%lld,\"all_params\":%lld,\"train_seconds\":%.3f,\"eval_seconds\":%.3f,\"tokens_per_s\":%.1f,\"steps\":%d,\"peak_rss_mb\":%.1f}\n",
               (long long)r->trainable, (long long)r->all, r->train_seconds, r->eval_seconds, r->tokens_per_s, r->steps,
               r->peak_rss / 1048576.0);
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (!r->scored[i]) continue; /* empty, or left out by --eval-splits */
        if (r->acc[i] >= 0)
            printf("%-5s accuracy: %6.2f%%  loss %.4f  (%d examples)\n", names[i], 100 * r->acc[i], r->loss[i], r->n[i]);
        else
            printf("%-5s loss: %.4f  perplexity %.3f  (%d examples)\n", names[i], r->loss[i], exp(r->loss[i]), r->n[i]);
    }
    if (r->steps > 0)
        printf("training: %d steps, %.1f s, %.1f tokens/s; evaluation %.1f s; peak RSS %.0f MB\n", r->steps,
               r->train_seconds, r->tokens_per_s, r->eval_seconds, r->peak_rss / 1048576.0);
    (void)s;
}

void cli_write_results(const cli_args *a, const char *dir, const cli_results *r, const cli_splits *s) {
    static const char *names[3] = {"train", "val", "test"};
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", cli_str(a, "model", ""));
    cJSON_AddStringToObject(j, "data", cli_str(a, "data", ""));
    cJSON_AddStringToObject(j, "method", cli_str(a, "method", "lora"));
    for (int i = 0; i < 3; i++) {
        char k[32];
        snprintf(k, sizeof k, "%s_n", names[i]);
        cJSON_AddNumberToObject(j, k, r->n[i]);
        if (r->acc[i] >= 0) {
            snprintf(k, sizeof k, "%s_acc", names[i]);
            cJSON_AddNumberToObject(j, k, r->acc[i]);
        }
        if (!isnan(r->loss[i])) {
            snprintf(k, sizeof k, "%s_loss", names[i]);
            cJSON_AddNumberToObject(j, k, r->loss[i]);
        }
    }
    cJSON_AddNumberToObject(j, "trainable_params", (double)r->trainable);
    cJSON_AddNumberToObject(j, "all_params", (double)r->all);
    cJSON_AddNumberToObject(j, "train_seconds", r->train_seconds);
    cJSON_AddNumberToObject(j, "eval_seconds", r->eval_seconds);
    cJSON_AddNumberToObject(j, "tokens_per_s", r->tokens_per_s);
    cJSON_AddNumberToObject(j, "steps", r->steps);
    cJSON_AddNumberToObject(j, "peak_rss_mb", r->peak_rss / 1048576.0);
    if (r->ranks > 1) {
        cJSON_AddNumberToObject(j, "ranks", r->ranks);
        cJSON_AddNumberToObject(j, "comm_seconds", r->comm_seconds);
        cJSON_AddNumberToObject(j, "comm_wait_seconds", r->comm_wait_seconds);
        cJSON_AddNumberToObject(j, "comm_bytes_per_step", r->comm_bytes_per_step);
    }
    char *txt = cJSON_Print(j), path[1200];
    cJSON_Delete(j);
    if (txt) {
        cli_check(a->cmd, lorac_write_atomic(lorac_path_join(path, sizeof path, dir, "results.json"), txt, strlen(txt)));
        free(txt);
    }
    (void)s;
}
