/* cli_evalset.c - the data flags of lorac eval / merge as a public
 * lorac_data_config, and the evaluation set made from them, with the lines
 * lorac train prints while loading data. The flags' checks and messages are
 * lorac train's (cli_data.c), so a bad flag reads the same in every command;
 * the loading itself is the library's (lorac_evalset_open). */
#include "cli_evalset.h"

#include <stdio.h>
#include <string.h>

/* --task: a usage error for anything but the three tasks. */
static const char *task_opt(const cli_args *a) {
    const char *t = cli_str(a, "task", "classify");
    if (strcmp(t, "classify") && strcmp(t, "lm") && strcmp(t, "instruct"))
        cli_die(a->cmd, EXIT_USAGE, "--task '%s': expected classify, lm or instruct", t);
    return t;
}

/* --chat-format: NULL for auto, else one of the families lorac_llm_chat knows. */
static const char *chat_format_opt(const cli_args *a) {
    static const char *const fam[] = {"chatml", "llama3", "gemma", "phi3", "mistral", "llama2", "alpaca"};
    const char *name = cli_str(a, "chat-format", "auto");
    if (!strcmp(name, "auto")) return NULL;
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++)
        if (!strcmp(name, fam[i])) return name;
    cli_die(a->cmd, EXIT_USAGE, "--chat-format '%s': expected auto, chatml, llama3, gemma, phi3, mistral, llama2 or "
            "alpaca", name);
}

/* --labels: a comma list of at most 32 names, each 1..95 characters after
 * trimming spaces (what the library accepts), checked here so that the
 * message names the flag. */
static void labels_opt(const cli_args *a, const char *s) {
    int n = 0;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && *p == ' ') p++, len--;
        while (len && p[len - 1] == ' ') len--;
        if (len == 0 || len >= 96)
            cli_die(a->cmd, EXIT_USAGE, "--labels: empty or too long name in '%s'; hint: a comma-separated list like "
                    "q_proj,v_proj", s);
        if (n++ >= 32) cli_die(a->cmd, EXIT_USAGE, "--labels: more than 32 names");
        if (!e) break;
        p = e + 1;
    }
}

void cli_data_config(const cli_args *a, int whole, int n_ctx, lorac_data_config *c) {
    memset(c, 0, sizeof *c);
    c->task = task_opt(a);
    c->chat_format = chat_format_opt(a);
    c->data = cli_str(a, "data", NULL);
    if (!c->data) cli_die(a->cmd, EXIT_USAGE, "--data is required");
    c->labels = cli_str(a, "labels", NULL);
    if (c->labels) labels_opt(a, c->labels);
    c->format = cli_str(a, "format", NULL);
    c->text_col = cli_str(a, "text-col", NULL);
    c->label_col = cli_str(a, "label-col", NULL);
    c->skip_bad_rows = cli_has(a, "skip-bad-rows");
    c->whole = whole;
    if (!whole) {
        c->balance = cli_has(a, "balance");
        if (c->balance && strcmp(c->task, "classify")) cli_die(a->cmd, EXIT_USAGE, "--balance needs --task classify");
        c->val = cli_str(a, "val", NULL);
        c->test = cli_str(a, "test", NULL);
        const char *sp = cli_str(a, "split", NULL);
        if (sp && (sscanf(sp, "%lf,%lf", &c->split_train, &c->split_val) != 2 || c->split_train <= 0 ||
                   c->split_val < 0 || c->split_train + c->split_val > 1))
            cli_die(a->cmd, EXIT_USAGE, "--split '%s': expected two fractions like 0.7,0.1 summing to at most 1", sp);
        c->max_examples = cli_int(a, "max-examples", 0, 0, 1 << 30);
        c->max_eval = cli_int(a, "max-eval", 0, 0, 1 << 30);
    }
    c->max_len = cli_int(a, "max-len", 256 < n_ctx ? 256 : n_ctx, 2, n_ctx);
}

int cli_evalset_is_cls(const lorac_evalset *s) {
    lorac_evalset_info in = {.size = sizeof in};
    return lorac_evalset_get_info(s, &in) == LORAC_OK && !strcmp(in.task, "classify");
}

lorac_evalset *cli_evalset_open(const cli_args *a, const lorac_llm *llm, int whole, const char *no_head,
                                int check_classes) {
    lorac_llm_info li = {.size = sizeof li};
    cli_check(a->cmd, lorac_llm_get_info(llm, &li));
    lorac_data_config c;
    cli_data_config(a, whole, li.n_ctx, &c);
    lorac_evalset *s;
    cli_check(a->cmd, lorac_evalset_open(llm, &c, cli_u64(a, "seed", 123), &s));
    lorac_evalset_info in = {.size = sizeof in};
    cli_check(a->cmd, lorac_evalset_get_info(s, &in));
    const char *files[3] = {c.data, c.val, c.test};
    for (int i = 0; i < 3; i++)
        if (in.skipped[i]) fprintf(stderr, "%s: skipped %d bad rows\n", files[i], in.skipped[i]);
    if (whole) {
        fprintf(stderr, "examples: test %d (every row of %s)\n", in.n[2], c.data);
    } else {
        if (!strcmp(in.task, "classify")) {
            fprintf(stderr, "labels:");
            for (int i = 0; i < in.n_labels; i++) {
                int cnt;
                const char *name = lorac_evalset_label(s, i, &cnt);
                fprintf(stderr, " %d=%s (%d)", i, name, cnt);
            }
            fputc('\n', stderr);
        }
        fprintf(stderr, "examples: train %d, val %d, test %d\n", in.n[0], in.n[1], in.n[2]);
    }
    /* classification needs a trained head: checked before the tokenizing lines, as lorac train does */
    if (!strcmp(in.task, "classify") && li.n_classes == 0) cli_die(a->cmd, EXIT_USAGE, "%s", no_head);
    if (check_classes && !strcmp(in.task, "classify") && in.n_labels > li.n_classes)
        cli_die(a->cmd, 1, "%s has %d labels but the head has %d classes", c.data, in.n_labels, li.n_classes);
    if (!strcmp(in.task, "instruct")) {
        const lorac_chat_info *f = &in.chat;
        fprintf(stderr, "chat format: %s (%s)%s%s%s\n", f->family,
                f->from_template ? f->source : !c.chat_format ? "the model has no chat template" : "--chat-format",
                f->default_system[0] ? "; default system message \"" : "", f->default_system,
                f->default_system[0] ? "\"" : "");
    }
    static const char *const names[3] = {"train", "val", "test"};
    for (int i = 0; i < 3; i++)
        if (in.truncated[i])
            fprintf(stderr, "%s: %d of %d examples truncated to %d tokens\n", names[i], in.truncated[i], in.n[i],
                    in.max_len);
    return s;
}
