/* bench_switch - several task adapters over one base vs merged copies.
 *
 *   bench_switch MODEL TASK [TASK ...]
 *   TASK = name=N,adapter=DIR,data=FILE[,text=COL,label=COL][,balance][,split=TR:VA][,sample=K][,maxlen=L]
 *
 * Loads the base once, loads every adapter into one lorac_adapter_set, then
 * for each task activates its adapter and evaluates its test examples (the
 * same test set `lorac train` used with the same seed: balance + split ->
 * the split's test part; sample=K -> a random K of the file, as
 * --max-eval K picks the test sample). Prints each task's accuracy next to
 * the one its training run wrote (DIR/results.json), the median time of a
 * switch (1000 switches), and resident memory: the base plus all adapters
 * against one merged copy of the base per task (each loaded and merged as
 * `lorac merge` would). Memory is this process's RSS (/proc/self/statm)
 * before and after each part. Seed 123 unless LORAC_SEED is set. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "io/dataset.h"
#include "io/tokenizer.h"
#include "lora/adapter_io.h"
#include "lora/adapter_set.h"
#include "lora/merge.h"
#include "models/model.h"
#include "train/trainer.h"

typedef struct task {
    char name[64], adapter[512], data[512], text[64], label[64];
    int balance, sample, maxlen;
    double tr, va;
    lorac_tokenized tk;
} task;

static double rss_mb(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1 << 20);
}

static void die(const char *what) {
    fprintf(stderr, "bench_switch: %s: %s\n", what, lorac_last_error());
    exit(1);
}

static void parse_task(const char *spec, task *t) {
    memset(t, 0, sizeof *t);
    t->maxlen = 128;
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *kv = strtok(buf, ","); kv; kv = strtok(NULL, ",")) {
        char *eq = strchr(kv, '=');
        const char *v = eq ? eq + 1 : "";
        if (eq) *eq = 0;
        if (!strcmp(kv, "name")) snprintf(t->name, sizeof t->name, "%s", v);
        else if (!strcmp(kv, "adapter")) snprintf(t->adapter, sizeof t->adapter, "%s", v);
        else if (!strcmp(kv, "data")) snprintf(t->data, sizeof t->data, "%s", v);
        else if (!strcmp(kv, "text")) snprintf(t->text, sizeof t->text, "%s", v);
        else if (!strcmp(kv, "label")) snprintf(t->label, sizeof t->label, "%s", v);
        else if (!strcmp(kv, "balance")) t->balance = 1;
        else if (!strcmp(kv, "split")) {
            if (sscanf(v, "%lf:%lf", &t->tr, &t->va) != 2) { fprintf(stderr, "bench_switch: split=TR:VA\n"); exit(2); }
        } else if (!strcmp(kv, "sample")) t->sample = atoi(v);
        else if (!strcmp(kv, "maxlen")) t->maxlen = atoi(v);
        else { fprintf(stderr, "bench_switch: unknown task key '%s'\n", kv); exit(2); }
    }
    if (!t->name[0] || !t->adapter[0] || !t->data[0]) { fprintf(stderr, "bench_switch: a task needs name, adapter and data\n"); exit(2); }
}

/* The test examples `lorac train` evaluated, rebuilt with its seed. */
static void load_test(task *t, const lorac_tokenizer *tok, const char *const *labels, uint64_t seed) {
    lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
    o.text_col = t->text[0] ? t->text : NULL;
    o.label_col = t->label[0] ? t->label : NULL;
    o.label_order = labels;
    lorac_dataset all, test, train_part;
    if (lorac_dataset_load(t->data, &o, &all) != LORAC_OK) die(t->data);
    if (t->balance && lorac_dataset_balance(&all, seed) != LORAC_OK) die("balance");
    if (t->tr > 0) {
        if (lorac_dataset_split(&all, t->tr, t->va, seed, 1, &train_part, NULL, &test) != LORAC_OK) die("split");
        lorac_dataset_free(&train_part);
        lorac_dataset_free(&all);
    } else {
        test = all;
    }
    if (t->sample > 0 && t->sample < test.n) {
        lorac_dataset sub;
        lorac_dataset_shuffle(&test, seed + 2); /* what --max-eval does to the test set */
        if (lorac_dataset_subset(&test, t->sample, &sub) != LORAC_OK) die("subset");
        lorac_dataset_free(&test);
        test = sub;
    }
    if (lorac_tokenize_dataset(tok, &test, LORAC_TASK_CLS, t->maxlen, NULL, &t->tk) != LORAC_OK) die("tokenize");
    lorac_dataset_free(&test);
}

static double trained_acc(const char *dir) {
    char p[1200], *text;
    if (lorac_read_file(lorac_path_join(p, sizeof p, dir, "results.json"), 1 << 20, &text, NULL) != LORAC_OK) return -1;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "test_acc");
    double a = cJSON_IsNumber(v) ? v->valuedouble : -1;
    cJSON_Delete(j);
    return a;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_switch MODEL name=N,adapter=DIR,data=FILE[,text=C,label=C][,balance][,split=TR:VA][,sample=K][,maxlen=L] ...\n");
        return 2;
    }
    const char *seed_env = getenv("LORAC_SEED");
    const uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : 123;
    const int nt = argc - 2;
    task *t = calloc((size_t)nt, sizeof *t);
    for (int i = 0; i < nt; i++) parse_task(argv[2 + i], &t[i]);

    const double rss0 = rss_mb();
    lorac_model *m;
    if (lorac_model_load(argv[1], &m) != LORAC_OK) die(argv[1]);
    lorac_tokenizer *tok;
    if ((m->gguf ? lorac_tokenizer_from_gguf(m->gguf, &tok) : lorac_tokenizer_load(argv[1], &tok)) != LORAC_OK) die("tokenizer");
    const double rss_base = rss_mb();
    lorac_adapter_set set;
    lorac_adapters_init(&set, m);
    for (int i = 0; i < nt; i++)
        if (lorac_adapters_load(&set, t[i].name, t[i].adapter) != LORAC_OK) die(t[i].adapter);
    const double rss_set = rss_mb();
    for (int i = 0; i < nt; i++) {
        const lorac_adapter_slot *s = &set.slot[i];
        load_test(&t[i], tok, s->n_labels ? (const char *const *)s->labels : NULL, seed);
    }
    printf("base %s: %.0f MB resident; %d adapters: +%.1f MB resident (%.1f MB of adapter tensors)\n", argv[1],
           rss_base - rss0, nt, rss_set - rss_base, lorac_adapters_bytes(&set) / 1048576.0);
    printf("%-10s %8s %12s %14s\n", "task", "test n", "accuracy", "train run's");
    for (int i = 0; i < nt; i++) {
        if (lorac_adapters_activate(&set, t[i].name) != LORAC_OK) die("activate");
        double loss, acc;
        if (lorac_evaluate(m, &t[i].tk, LORAC_TASK_CLS, 8, &loss, &acc) != LORAC_OK) die("evaluate");
        double want = trained_acc(t[i].adapter);
        printf("%-10s %8d %11.2f%% %13.2f%%\n", t[i].name, t[i].tk.n, 100 * acc, 100 * want);
    }
    enum { SWITCHES = 1000 };
    double *dt = malloc(sizeof(double) * SWITCHES);
    for (int k = 0; k < SWITCHES; k++) {
        double t0 = lorac_now();
        lorac_adapters_activate(&set, t[k % nt].name);
        dt[k] = lorac_now() - t0;
    }
    qsort(dt, SWITCHES, sizeof *dt, cmp_double);
    printf("switch: median %.2f us, max %.2f us over %d switches (no reload, no copy)\n", dt[SWITCHES / 2] * 1e6,
           dt[SWITCHES - 1] * 1e6, SWITCHES);
    free(dt);

    /* the alternative: one merged copy of the base per task */
    const double rss_before_merged = rss_mb();
    lorac_model **copies = calloc((size_t)nt, sizeof *copies);
    for (int i = 0; i < nt; i++) {
        if (lorac_model_load(argv[1], &copies[i]) != LORAC_OK) die(argv[1]);
        if (lorac_adapter_load(copies[i], t[i].adapter, NULL) != LORAC_OK) die(t[i].adapter);
        if (lorac_lora_merge(copies[i]) != LORAC_OK) die("merge");
    }
    const double rss_merged = rss_mb();
    printf("memory: base + %d adapters %.0f MB  vs  %d merged copies %.0f MB  (ratio %.2fx)\n", nt,
           rss_set - rss0, nt, rss_merged - rss_before_merged, (rss_merged - rss_before_merged) / (rss_set - rss0));
    for (int i = 0; i < nt; i++) lorac_model_free(copies[i]);
    free(copies);
    for (int i = 0; i < nt; i++) lorac_tokenized_free(&t[i].tk);
    free(t);
    lorac_adapters_free(&set);
    lorac_tokenizer_free(tok);
    lorac_model_free(m);
    return 0;
}
