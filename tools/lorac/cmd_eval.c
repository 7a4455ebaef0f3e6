/* lorac eval - evaluate a base model, optionally with an adapter, on a data
 * file: accuracy and loss (classification) or loss and perplexity (LM).
 * Not on the public API yet (cli_internal.h, via cli_data.h): it shares
 * lorac train's data loading, split and results printing (cli_data.c). */
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

int cmd_eval(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "eval", eval_usage, eval_opts, argc, argv);
    cli_set_threads(&a);
    int splits_wanted[3];
    cli_eval_splits(&a, splits_wanted); /* a bad list fails before anything loads */
    (void)cli_qbase_is_qlora(&a); /* a usage error for a --method other than lora / qlora */
    lorac_llm *llm;
    cli_open_infer(&a, 1, &llm);
    lorac_model *m = llm->m;
    cli_load_adapters(&a, llm);
    cli_splits sp;
    cli_load_splits(&a, &sp, !(cli_has(&a, "split") || cli_has(&a, "balance")));
    if (sp.task == LORAC_TASK_CLS && (!m->head || !m->head->W->data))
        cli_die("eval", EXIT_USAGE, "classification needs the adapter that holds the trained head; hint: --adapter DIR");
    const int n_labels = sp.train.n ? sp.train.n_labels : sp.test.n_labels;
    if (sp.task == LORAC_TASK_CLS && n_labels > m->n_classes)
        cli_die("eval", 1, "%s has %d labels but the head has %d classes", cli_str(&a, "data", ""), n_labels, m->n_classes);
    cli_tokenized tk;
    cli_tokenize_splits(&a, &sp, llm, &tk);
    cli_results r;
    cli_print_base(&a, llm);
    cli_evaluate_splits(&a, m, &tk, sp.task, cli_int(&a, "batch", 8, 1, 65536), &r);
    if (!r.scored[0] && !r.scored[1] && !r.scored[2])
        cli_die("eval", EXIT_USAGE, "--eval-splits %s: no such split has examples here (train %d, val %d, test %d); "
                "hint: --split 0.7,0.1 carves train / validation / test out of --data, or drop --eval-splits",
                cli_str(&a, "eval-splits", "?"), r.n[0], r.n[1], r.n[2]);
    lorac_count_params(m, &r.trainable, &r.all);
    cli_print_results(&a, &r, &sp);
    cli_tokenized_free(&tk);
    cli_splits_free(&sp);
    lorac_llm_close(llm);
    return 0;
}
