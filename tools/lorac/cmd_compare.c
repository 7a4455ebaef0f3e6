/* lorac compare - train several methods (LoRA variants, last layers, head,
 * full) on the same data, split and seed, and print one table.
 *
 * A thin driver over `lorac train`: each method runs this same binary
 * (/proc/self/exe) as a child `train <the user's flags> --method M
 * [overrides] --json --out OUT/<slug>` (fork + execv, no shell). Its stdout
 * (the --json results) is captured, its stderr (progress) passes through,
 * and its peak RSS is its own (wait4). Rows go to OUT/compare.jsonl and
 * OUT/compare.csv, rewritten atomically after every method. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

#define MAX_RUNS 32
#define MAX_OVER 16

static const char *compare_usage =
    "usage: lorac compare --model PATH --data FILE --out DIR [--methods LIST] [train options]\n\n"
    "Train several methods on the same data, split and seed, each in its own `lorac train`\n"
    "process, and print one table: trainable params, train / val / test accuracy, wall time,\n"
    "tokens/s and peak RSS per method. The rows also go to DIR/compare.jsonl (one JSON object\n"
    "per method) and DIR/compare.csv; each method's own run (metrics.jsonl, results.json, the\n"
    "adapter for LoRA) to DIR/<method>, e.g. DIR/lora, DIR/last-layers-2, DIR/lora-r16-alpha32.\n\n"
    "--methods LIST: methods separated by ';' (or by ',' when LIST has no ';').\n"
    "  A method is lora | full | head | last-layers:N, optionally followed by overrides\n"
    "  ':KEY=VALUE' (or ':SWITCH') that become --KEY VALUE for that method only; KEY is any\n"
    "  train option except out and json, and a VALUE holds no ':' nor the separator.\n"
    "  Default: lora,last-layers:2,head,full (without head unless --task classify).\n"
    "Every other option is passed unchanged to each train run. A method that fails at run\n"
    "time is reported, the others still run, and compare exits 1 at the end; a usage error\n"
    "in a train run (exit 2) stops the comparison with exit 2.\n\n"
    "Examples:\n"
    "  lorac compare --model smollm2.gguf --data SMSSpamCollection --balance --max-len 120 --out runs/cmp\n"
    "  lorac compare --model M --data sms.tsv --epochs 1 --out runs/cmp2 \\\n"
    "      --methods 'lora;lora:r=16:alpha=32:target=all-linear;last-layers:2;head;full:lr=1e-5'";

/* the numeric fields a row copies from train's --json, in CSV order after method and status */
static const char *const fields[] = {"trainable_params", "all_params", "trainable_pct", "train_acc", "val_acc",
                                     "test_acc", "train_loss", "val_loss", "test_loss", "train_seconds",
                                     "wall_seconds", "tokens_per_s", "steps", "peak_rss_mb", NULL};

typedef struct run {
    const char *spec;        /* as given in --methods */
    char buf[256];           /* a copy of spec, cut up by parse_spec */
    char method[64];         /* the value for --method */
    char keys[MAX_OVER][72];   /* "--KEY" */
    char *over[2 * MAX_OVER]; /* "--KEY", "VALUE", ... */
    int n_over, n_keys;
    char dir[1200];          /* OUT/<slug> */
    cJSON *row;
} run;

static cli_opt opts[160];

static void build_opts(void) {
    int k = 0;
    for (const cli_opt *o = cli_train_opts; o->name; o++) {
        if (!strcmp(o->name, "method")) continue; /* --methods instead */
        if (!strcmp(o->name, "resume")) continue; /* one checkpoint cannot continue several methods */
        opts[k] = *o;
        if (!strcmp(o->name, "out"))
            opts[k].help = "write compare.jsonl, compare.csv and each method's run (DIR/<method>) here (required)";
        else if (!strcmp(o->name, "json"))
            opts[k].help = "print the rows as JSON lines (compare.jsonl) on stdout instead of the table";
        k++;
    }
    opts[k++] = (cli_opt){"methods", "LIST", "methods to compare, ';'-separated (see above; default lora,last-layers:2,head,full)"};
    opts[k] = (cli_opt){NULL, NULL, NULL};
}

static const cli_opt *find_opt(const char *name) {
    for (const cli_opt *o = opts; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

/* "lora:r=16:alpha=32" -> method "lora", overrides --r 16 --alpha 32. Modifies s. */
static void parse_spec(char *s, run *r) {
    char *save = NULL, *name = strtok_r(s, ":", &save);
    if (!name) cli_die("compare", EXIT_USAGE, "--methods: empty method in '%s'; hint: e.g. lora;last-layers:2;full", r->spec);
    snprintf(r->method, sizeof r->method, "%s", name);
    if (!strcmp(name, "last-layers")) {
        char *n = strtok_r(NULL, ":", &save);
        if (n) snprintf(r->method, sizeof r->method, "last-layers:%s", n);
    }
    int n;
    cli_method_parse("compare", "--methods", r->method, &n);
    for (char *t; (t = strtok_r(NULL, ":", &save));) {
        char *eq = strchr(t, '=');
        if (eq) *eq = 0;
        const cli_opt *o = find_opt(t);
        if (!o || !strcmp(t, "out") || !strcmp(t, "json") || !strcmp(t, "methods"))
            cli_die("compare", EXIT_USAGE, "--methods '%s': '%s' is not a train option to override; hint: lorac train --help",
                    r->spec, t);
        if (!o->arg != !eq)
            cli_die("compare", EXIT_USAGE, "--methods '%s': %s; hint: write %s", r->spec,
                    o->arg ? "this option needs a value" : "this switch takes no value", o->arg ? "KEY=VALUE" : "KEY alone");
        if (r->n_keys >= MAX_OVER) cli_die("compare", EXIT_USAGE, "--methods '%s': too many overrides", r->spec);
        char *key = r->keys[r->n_keys++];
        snprintf(key, sizeof r->keys[0], "--%s", t);
        r->over[r->n_over++] = key;
        if (eq) r->over[r->n_over++] = eq + 1;
    }
}

/* OUT/<slug>: the spec with ':' and odd characters as '-', '=' dropped; unique among the runs */
static void make_dir(const char *out, run *runs, int i) {
    char slug[128];
    size_t o = 0;
    for (const char *p = runs[i].spec; *p && o + 8 < sizeof slug; p++) {
        char c = *p;
        if (c == '=') continue;
        slug[o++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ? c : '-';
    }
    slug[o] = 0;
    cli_path_join(runs[i].dir, sizeof runs[i].dir, out, slug);
    for (int k = 2, j = 0; j < i; j++) {
        if (strcmp(runs[j].dir, runs[i].dir)) continue;
        char alt[160];
        snprintf(alt, sizeof alt, "%s-%d", slug, k++);
        cli_path_join(runs[i].dir, sizeof runs[i].dir, out, alt);
        j = -1; /* check the new name against all earlier ones */
    }
}

/* Run argv as a child with its stdout in *txt; *status as from wait4. */
static void run_child(char **argv, char **txt, int *status, struct rusage *ru) {
    int fd[2];
    if (pipe(fd) != 0) cli_die("compare", 1, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) cli_die("compare", 1, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "lorac compare: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fd[1]);
    size_t n = 0, cap = 4096;
    char *buf = malloc(cap);
    for (ssize_t k; buf;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
            if (!buf) break;
        }
        k = read(fd[0], buf + n, cap - n - 1);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd[0]);
    if (!buf) cli_die("compare", 1, "out of memory reading a train run's output");
    buf[n] = 0;
    while (wait4(pid, status, 0, ru) < 0)
        if (errno != EINTR) cli_die("compare", 1, "wait: %s", strerror(errno));
    *txt = buf;
}

/* The child's last non-empty stdout line, parsed; NULL if it is not JSON. */
static cJSON *last_json(char *txt) {
    size_t n = strlen(txt);
    while (n && (txt[n - 1] == '\n' || txt[n - 1] == '\r')) txt[--n] = 0;
    char *line = strrchr(txt, '\n');
    return cJSON_Parse(line ? line + 1 : txt);
}

static double num(const cJSON *row, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void set_num(cJSON *row, const char *key, double x) {
    cJSON_ReplaceItemInObjectCaseSensitive(row, key, isnan(x) ? cJSON_CreateNull() : cJSON_CreateNumber(x));
}

static cJSON *make_row(const run *r, const cJSON *res, int code, double wall, const struct rusage *ru) {
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "method", r->spec);
    cJSON_AddStringToObject(row, "status", res ? "ok" : "failed");
    cJSON_AddNumberToObject(row, "exit_code", code);
    for (int i = 0; fields[i]; i++) {
        cJSON_AddNullToObject(row, fields[i]);
        set_num(row, fields[i], num(res, fields[i]));
    }
    double t = num(res, "trainable_params"), all = num(res, "all_params");
    set_num(row, "trainable_pct", all > 0 ? 100.0 * t / all : NAN);
    set_num(row, "wall_seconds", round(wall * 1000) / 1000);
    set_num(row, "peak_rss_mb", round(ru->ru_maxrss / 1024.0 * 10) / 10); /* ru_maxrss is in KB */
    cJSON_AddStringToObject(row, "out", r->dir);
    return row;
}

typedef struct rows {
    const run *runs;
    int n;
} rows;

static int write_jsonl(void *ctx, FILE *f) {
    const rows *rs = ctx;
    for (int i = 0; i < rs->n; i++) {
        char *s = cJSON_PrintUnformatted(rs->runs[i].row);
        if (!s || fprintf(f, "%s\n", s) < 0) return 1;
        free(s);
    }
    return 0;
}

static void csv_str(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(void *ctx, FILE *f) {
    const rows *rs = ctx;
    fputs("method,status", f);
    for (int i = 0; fields[i]; i++) fprintf(f, ",%s", fields[i]);
    fputs(",out\n", f);
    for (int k = 0; k < rs->n; k++) {
        const cJSON *row = rs->runs[k].row;
        csv_str(f, rs->runs[k].spec);
        fprintf(f, ",%s", cJSON_GetObjectItemCaseSensitive(row, "status")->valuestring);
        for (int i = 0; fields[i]; i++) {
            double x = num(row, fields[i]);
            if (isnan(x)) fputc(',', f);
            else fprintf(f, ",%.10g", x);
        }
        fputc(',', f);
        csv_str(f, rs->runs[k].dir);
        if (fputc('\n', f) == EOF) return 1;
    }
    return 0;
}

static void write_rows(const char *out, const run *runs, int n) {
    char path[1200];
    rows rs = {runs, n};
    cli_write_atomic_stream("compare", cli_path_join(path, sizeof path, out, "compare.jsonl"), write_jsonl, &rs);
    cli_write_atomic_stream("compare", cli_path_join(path, sizeof path, out, "compare.csv"), write_csv, &rs);
}

static void cell_pct(double x) {
    if (isnan(x)) printf("  %9s", "-");
    else printf("  %8.2f%%", x);
}

static void print_table(const run *runs, int n) {
    int w = 6;
    for (int i = 0; i < n; i++) w = (int)strlen(runs[i].spec) > w ? (int)strlen(runs[i].spec) : w;
    printf("%-*s  %12s  %10s  %9s  %9s  %9s  %8s  %8s  %10s  %11s\n", w, "method", "trainable", "trainable%",
           "train acc", "val acc", "test acc", "wall s", "train s", "tokens/s", "peak RSS MB");
    for (int i = 0; i < n; i++) {
        const cJSON *row = runs[i].row;
        printf("%-*s", w, runs[i].spec);
        if (num(row, "exit_code") != 0) {
            printf("  FAILED (exit %d)\n", (int)num(row, "exit_code"));
            continue;
        }
        printf("  %12.0f  %9.4f%%", num(row, "trainable_params"), num(row, "trainable_pct"));
        cell_pct(100 * num(row, "train_acc"));
        cell_pct(100 * num(row, "val_acc"));
        cell_pct(100 * num(row, "test_acc"));
        printf("  %8.1f  %8.1f  %10.0f  %11.1f\n", num(row, "wall_seconds"), num(row, "train_seconds"),
               num(row, "tokens_per_s"), num(row, "peak_rss_mb"));
    }
}

int cmd_compare(int argc, char **argv) {
    build_opts();
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--method") || !strncmp(argv[i], "--method=", 9))
            cli_die("compare", EXIT_USAGE, "compare takes --methods LIST, not --method; hint: --methods 'lora;last-layers:2;full'");
    cli_args a;
    cli_parse(&a, "compare", compare_usage, opts, argc, argv);
    const char *out = cli_str(&a, "out", NULL);
    if (!out) cli_die("compare", EXIT_USAGE, "--out is required: the directory for compare.jsonl, compare.csv and the runs");
    const int cls = !strcmp(cli_str(&a, "task", "classify"), "classify");
    char *specs = strdup(cli_str(&a, "methods", cls ? "lora,last-layers:2,head,full" : "lora,last-layers:2,full"));
    if (!specs) cli_die("compare", 1, "out of memory");

    /* every method is checked before anything runs */
    static run runs[MAX_RUNS];
    int n = 0;
    const char sep = strchr(specs, ';') ? ';' : ',';
    for (char *p = specs;; p++) {
        char *e = strchr(p, sep);
        if (e) *e = 0;
        while (*p == ' ') p++;
        for (size_t len = strlen(p); len && p[len - 1] == ' ';) p[--len] = 0;
        if (n >= MAX_RUNS) cli_die("compare", EXIT_USAGE, "--methods: more than %d methods", MAX_RUNS);
        run *r = &runs[n++];
        r->spec = p;
        if (strlen(p) >= sizeof r->buf) cli_die("compare", EXIT_USAGE, "--methods: '%s' is too long", p);
        strcpy(r->buf, p);
        parse_spec(r->buf, r);
        make_dir(out, runs, n - 1);
        char probe[1300];
        if (cli_file_exists(cli_path_join(probe, sizeof probe, r->dir, "adapter_config.json")) && !cli_has(&a, "overwrite"))
            cli_die("compare", EXIT_USAGE, "%s already holds an adapter; hint: choose another --out or pass --overwrite", r->dir);
        if (!e) break;
        p = e;
    }

    /* the user's flags, as train gets them */
    static char flags[160][72];
    char *base[2 * 160 + 2];
    int nb = 0;
    base[nb++] = "lorac";
    base[nb++] = "train";
    for (int j = 0; j < a.n_opts; j++) {
        const char *name = opts[j].name;
        if (!a.values[j] || !strcmp(name, "out") || !strcmp(name, "json") || !strcmp(name, "methods")) continue;
        snprintf(flags[j], sizeof flags[j], "--%s", name);
        base[nb++] = flags[j];
        if (opts[j].arg) base[nb++] = (char *)a.values[j];
    }
    cli_mkdirs("compare", out);

    int failed = 0;
    for (int i = 0; i < n; i++) {
        run *r = &runs[i];
        char *av[2 * 160 + 2 * MAX_OVER + 8];
        int k = 0;
        for (int j = 0; j < nb; j++) av[k++] = base[j];
        av[k++] = "--method";
        av[k++] = r->method;
        for (int j = 0; j < r->n_over; j++) av[k++] = r->over[j];
        av[k++] = "--json";
        av[k++] = "--out";
        av[k++] = r->dir;
        av[k] = NULL;
        fprintf(stderr, "== lorac compare [%d/%d]: %s -> %s\n", i + 1, n, r->spec, r->dir);
        char *txt;
        int status;
        struct rusage ru;
        const double t0 = cli_now();
        run_child(av, &txt, &status, &ru);
        const double wall = cli_now() - t0;
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code == EXIT_USAGE)
            cli_die("compare", EXIT_USAGE, "method '%s': train stopped with a usage error (above); no further methods run", r->spec);
        cJSON *res = code == 0 ? last_json(txt) : NULL;
        free(txt);
        r->row = make_row(r, res, code == 0 && !res ? 1 : code, wall, &ru);
        cJSON_Delete(res);
        if (!res) {
            failed++;
            fprintf(stderr, "lorac compare: method '%s' failed (%s %d); going on with the others\n", r->spec,
                    WIFEXITED(status) ? "exit" : "signal", WIFEXITED(status) ? code : WTERMSIG(status));
        }
        write_rows(out, runs, i + 1);
    }

    if (cli_has(&a, "json")) {
        rows rs = {runs, n};
        write_jsonl(&rs, stdout);
    } else {
        print_table(runs, n);
    }
    fflush(stdout);
    fprintf(stderr, "rows written to %s/compare.jsonl and compare.csv\n", out);
    for (int i = 0; i < n; i++) cJSON_Delete(runs[i].row);
    free(specs);
    if (failed) cli_die("compare", 1, "%d of %d methods failed (see above and compare.jsonl)", failed, n);
    return 0;
}
