/* cli_data.c - the data flags of train and eval on the public API: the
 * flags into a lorac_data_config (usage errors name the flag), loading with
 * lorac_data_load, the lines lorac train prints about the data, scoring
 * the splits (lorac_llm_score) and printing / writing the results. */
#include "cli_data.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The chat formats lorac_llm_chat knows (lorac.h); checked here so that a
 * bad --chat-format is a usage error before anything slow happens. */
static const char *const chat_formats[] = {"auto", "chatml", "llama3", "gemma", "phi3", "mistral", "llama2", "alpaca", NULL};

lorac_data *cli_load_data(const cli_args *a, lorac_llm *llm, int whole) {
    lorac_data_config c = {0};
    c.task = cli_str(a, "task", "classify");
    if (strcmp(c.task, "classify") && strcmp(c.task, "lm") && strcmp(c.task, "instruct"))
        cli_die(a->cmd, EXIT_USAGE, "--task '%s': expected classify, lm or instruct", c.task);
    const int cls = !strcmp(c.task, "classify");
    c.chat_format = cli_str(a, "chat-format", "auto");
    int known = 0;
    for (int i = 0; chat_formats[i]; i++) known |= !strcmp(c.chat_format, chat_formats[i]);
    if (!known)
        cli_die(a->cmd, EXIT_USAGE, "--chat-format '%s': expected auto, chatml, llama3, gemma, phi3, mistral, llama2 or "
                "alpaca", c.chat_format);
    c.data = cli_str(a, "data", NULL);
    if (!c.data) cli_die(a->cmd, EXIT_USAGE, "--data is required");
    c.labels = cli_str(a, "labels", NULL);
    if (c.labels) cli_check_list(a, "--labels", c.labels);
    c.format = cli_str(a, "format", NULL);
    c.text_col = cli_str(a, "text-col", NULL);
    c.label_col = cli_str(a, "label-col", NULL);
    c.skip_bad_rows = cli_has(a, "skip-bad-rows");
    c.whole = whole;
    const uint64_t seed = cli_u64(a, "seed", 123);
    if (!whole) {
        c.balance = cli_has(a, "balance");
        if (c.balance && !cls) cli_die(a->cmd, EXIT_USAGE, "--balance needs --task classify");
        c.val = cli_str(a, "val", NULL);
        c.test = cli_str(a, "test", NULL);
        const char *sp = cli_str(a, "split", NULL);
        if (sp && (sscanf(sp, "%lf,%lf", &c.split_train, &c.split_val) != 2 || c.split_train <= 0 || c.split_val < 0 ||
                   c.split_train + c.split_val > 1))
            cli_die(a->cmd, EXIT_USAGE, "--split '%s': expected two fractions like 0.7,0.1 summing to at most 1", sp);
        c.max_examples = cli_int(a, "max-examples", 0, 0, 1 << 30);
        c.max_eval = cli_int(a, "max-eval", 0, 0, 1 << 30);
    }
    lorac_llm_info mi = {.size = sizeof mi};
    cli_check(a->cmd, lorac_llm_get_info(llm, &mi));
    c.max_len = cli_int(a, "max-len", 256 < mi.n_ctx ? 256 : mi.n_ctx, 2, mi.n_ctx);
    lorac_data *d;
    cli_check(a->cmd, lorac_data_load(llm, &c, seed, &d));
    lorac_data_info info = {.size = sizeof info};
    cli_check(a->cmd, lorac_data_get_info(d, &info));
    const char *files[3] = {c.data, c.val, c.test};
    for (int i = 0; i < 3; i++)
        if (info.skipped[i]) fprintf(stderr, "%s: skipped %d bad rows\n", files[i], info.skipped[i]);
    if (whole) { /* every row of --data is the test set (lorac eval without --split) */
        fprintf(stderr, "examples: test %d (every row of %s)\n", info.n[2], c.data);
        return d;
    }
    if (cls) {
        fprintf(stderr, "labels:");
        for (int i = 0; i < info.n_labels; i++) {
            int count;
            const char *name = lorac_data_label(d, i, &count);
            fprintf(stderr, " %d=%s (%d)", i, name, count);
        }
        fputc('\n', stderr);
    }
    fprintf(stderr, "examples: train %d, val %d, test %d\n", info.n[0], info.n[1], info.n[2]);
    return d;
}

void cli_print_tokenized(const cli_args *a, const lorac_data *d) {
    static const char *names[3] = {"train", "val", "test"};
    lorac_data_info info = {.size = sizeof info};
    cli_check(a->cmd, lorac_data_get_info(d, &info));
    if (info.has_chat) {
        const lorac_chat_info *f = &info.chat;
        const int named = strcmp(cli_str(a, "chat-format", "auto"), "auto") != 0;
        fprintf(stderr, "chat format: %s (%s)%s%s%s\n", f->family,
                f->from_template ? f->source : !named ? "the model has no chat template" : "--chat-format",
                f->default_system[0] ? "; default system message \"" : "", f->default_system,
                f->default_system[0] ? "\"" : "");
    }
    for (int i = 0; i < 3; i++)
        if (info.truncated[i])
            fprintf(stderr, "%s: %d of %d examples truncated to %d tokens\n", names[i], info.truncated[i], info.n[i],
                    info.max_len);
}

lorac_data *cli_load_eval_data(const cli_args *a, lorac_llm *llm, int whole, const char *no_head, int check_classes) {
    lorac_llm_info li = {.size = sizeof li};
    cli_check(a->cmd, lorac_llm_get_info(llm, &li));
    lorac_data *d = cli_load_data(a, llm, whole);
    lorac_data_info in = {.size = sizeof in};
    cli_check(a->cmd, lorac_data_get_info(d, &in));
    /* classification needs a trained head: checked before the tokenizing lines, as lorac train does */
    const int cls = !strcmp(in.task, "classify");
    if (cls && li.n_classes == 0) cli_die(a->cmd, EXIT_USAGE, "%s", no_head);
    if (check_classes && cls && in.n_labels > li.n_classes)
        cli_die(a->cmd, 1, "%s has %d labels but the head has %d classes", cli_str(a, "data", "?"), in.n_labels,
                li.n_classes);
    cli_print_tokenized(a, d);
    return d;
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

void cli_score_splits(const cli_args *a, lorac_llm *llm, const lorac_data *d, int batch, cli_results *r) {
    lorac_data_info info = {.size = sizeof info};
    cli_check(a->cmd, lorac_data_get_info(d, &info));
    memset(r, 0, sizeof *r);
    int want[3];
    cli_eval_splits(a, want);
    const double t0 = cli_now();
    for (int i = 0; i < 3; i++) {
        r->n[i] = info.n[i];
        r->acc[i] = -1;
        r->loss[i] = NAN;
        if (info.n[i] == 0 || !want[i]) continue;
        r->scored[i] = 1;
        lorac_split_scores sc;
        cli_check(a->cmd, lorac_llm_score(llm, d, i, batch, cli_ranks, &sc));
        r->loss[i] = sc.loss;
        r->acc[i] = sc.acc;
    }
    r->eval_seconds = cli_now() - t0;
}

void cli_print_results(const cli_args *a, const cli_results *r) {
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
}

void cli_write_results(const cli_args *a, const char *dir, const cli_results *r) {
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
        cli_write_atomic(a->cmd, cli_path_join(path, sizeof path, dir, "results.json"), txt, strlen(txt));
        free(txt);
    }
}
