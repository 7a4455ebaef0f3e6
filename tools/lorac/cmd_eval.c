/* lorac eval - evaluate a base model, optionally with an adapter, on a data
 * file: accuracy and loss (classification) or loss and perplexity (LM).
 * On the public API only: the data flags become a lorac_data
 * (cli_load_eval_data, cli_data.c), scored split by split with lorac_llm_score; the results
 * are printed as lorac train prints them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_data.h"

static const cli_opt eval_opts[] = {
    {"model", "PATH", "base model: Hugging Face directory or .gguf file (required)"},
    {"tokenizer", "PATH", "tokenizer file or directory (default: the model's)"},
    CLI_ADAPTER_OPTS,
    CLI_QBASE_OPTS,
    CLI_INFER_BASE_OPT,
    CLI_DATA_OPTS,
    {"batch", "N", "batch size (default 8)"},
    {"seed", "N", "seed for --balance / --split (default 123)"},
    {"threads", "N", "threads (default: OMP_NUM_THREADS or all cores)"},
    {"json", NULL, "print the results as one JSON object on stdout"},
    {NULL, NULL, NULL}};

static const char *eval_usage =
    "usage: lorac eval --model PATH [--adapter [NAME=]DIR ...] [--use NAME] --data FILE [options]\n\n"
    "Evaluate on every row of --data (or on the splits of --data with --split,\n"
    "using the same seed as training to get the same test set).";

/* The scores as lorac train prints its final ones (text, or --json with the
 * training fields zero). */
static void print_scores(const cli_args *a, const lorac_split_scores sc[3], const int scored[3], double eval_seconds,
                         const lorac_llm_info *li) {
    static const char *const names[3] = {"train", "val", "test"};
    if (cli_has(a, "json")) {
        printf("{");
        for (int i = 0; i < 3; i++) {
            if (sc[i].acc >= 0) printf("\"%s_acc\":%.6f,", names[i], sc[i].acc);
            if (!isnan(sc[i].loss)) printf("\"%s_loss\":%.6f,", names[i], sc[i].loss);
            printf("\"%s_n\":%d,", names[i], sc[i].n);
        }
        printf("\"trainable_params\":%lld,\"all_params\":%lld,\"train_seconds\":%.3f,\"eval_seconds\":%.3f,"
               "\"tokens_per_s\":%.1f,\"steps\":%d,\"peak_rss_mb\":%.1f}\n",
               (long long)li->params_trainable, (long long)li->params_all, 0.0, eval_seconds, 0.0, 0, 0.0);
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (!scored[i]) continue; /* empty, or left out by --eval-splits */
        if (sc[i].acc >= 0)
            printf("%-5s accuracy: %6.2f%%  loss %.4f  (%d examples)\n", names[i], 100 * sc[i].acc, sc[i].loss, sc[i].n);
        else
            printf("%-5s loss: %.4f  perplexity %.3f  (%d examples)\n", names[i], sc[i].loss, exp(sc[i].loss), sc[i].n);
    }
}

int cmd_eval(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "eval", eval_usage, eval_opts, argc, argv);
    cli_set_threads(&a);
    int want[3];
    cli_eval_splits(&a, want); /* a bad list fails before anything loads */
    (void)cli_qbase_is_qlora(&a); /* a usage error for a --method other than lora / qlora */
    const int batch = cli_int(&a, "batch", 8, 1, 65536);
    lorac_llm *llm;
    cli_open_infer(&a, 1, &llm);
    cli_load_adapters(&a, llm);
    lorac_data *set = cli_load_eval_data(&a, llm, !(cli_has(&a, "split") || cli_has(&a, "balance")),
                                          "classification needs the adapter that holds the trained head; hint: --adapter DIR", 1);
    lorac_split_scores sc[3];
    int scored[3] = {0, 0, 0};
    lorac_data_info in = {.size = sizeof in};
    cli_check("eval", lorac_data_get_info(set, &in));
    cli_print_base(&a, llm);
    const double t0 = cli_now();
    for (int i = 0; i < 3; i++) {
        sc[i] = (lorac_split_scores){in.n[i], NAN, -1}; /* empty, or not asked for: counted, not scored */
        scored[i] = want[i] && in.n[i] > 0;
        if (scored[i]) cli_check("eval", lorac_llm_score(llm, set, i, batch, NULL, &sc[i]));
    }
    const double eval_seconds = cli_now() - t0;
    if (!scored[0] && !scored[1] && !scored[2])
        cli_die("eval", EXIT_USAGE, "--eval-splits %s: no such split has examples here (train %d, val %d, test %d); "
                "hint: --split 0.7,0.1 carves train / validation / test out of --data, or drop --eval-splits",
                cli_str(&a, "eval-splits", "?"), sc[0].n, sc[1].n, sc[2].n);
    lorac_llm_info li = {.size = sizeof li};
    cli_check("eval", lorac_llm_get_info(llm, &li));
    print_scores(&a, sc, scored, eval_seconds, &li);
    lorac_data_free(set);
    lorac_llm_close(llm);
    return 0;
}
