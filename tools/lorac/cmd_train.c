/* lorac train - fine-tune a model with LoRA (or full / head-only) on a
 * classification, plain-text or instruction data set, evaluate it on the
 * train / validation / test splits, and save the adapter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_data.h"
#include "core/util.h"
#include "lora/adapter_io.h"

const cli_opt cli_train_opts[] = {
    {"model", "PATH", "base model: Hugging Face directory or .gguf file (required)"},
    {"tokenizer", "PATH", "tokenizer file or directory (default: the model's)"},
    CLI_DATA_OPTS,
    CLI_LORA_OPTS,
    {"epochs", "N", "training epochs (default 1; appendix-e: 5)"},
    {"batch", "N", "batch size (default 8)"},
    {"grad-accum", "N", "micro-batches per optimizer step (default 1)"},
    {"max-steps", "N", "stop after N optimizer steps"},
    {"lr", "X", "AdamW learning rate (default 1e-4; appendix-e: 8e-4)"},
    {"weight-decay", "X", "AdamW weight decay (default 0.01; appendix-e: 0.1)"},
    {"warmup", "N", "linear warm-up steps (default 0)"},
    {"schedule", "S", "constant | linear | cosine (default constant)"},
    {"clip", "X", "clip the global gradient norm to X (default off)"},
    {"eval-every", "N", "evaluate every N steps (default: each epoch)"},
    {"skip-nonfinite", NULL, "skip a step whose loss or gradient is NaN/Inf instead of stopping"},
    {"seed", "N", "seed for data order, splits, LoRA init and dropout (default 123)"},
    {"threads", "N", "threads (default: OMP_NUM_THREADS or all cores)"},
    {"out", "DIR", "write the adapter, metrics.jsonl and results.json here"},
    {"overwrite", NULL, "allow --out to replace an adapter already there"},
    {"json", NULL, "print the final results as one JSON object on stdout"},
    {NULL, NULL, NULL}};

static const char *train_usage =
    "usage: lorac train --model PATH --data FILE [options]\n\n"
    "Fine-tune with LoRA, then report accuracy (classification) or loss on the\n"
    "train / validation / test splits. Examples:\n"
    "  lorac train --model smollm2.gguf --data SMSSpamCollection --balance --preset appendix-e --out runs/sms\n"
    "  lorac train --model dir --task lm --data notes.txt --epochs 2 --lr 2e-4 --out runs/notes";

int cmd_train(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "train", train_usage, cli_train_opts, argc, argv);
    cli_set_threads(&a);
    const int appx = cli_has(&a, "preset");
    /* every flag is checked before anything slow happens */
    lorac_train_opts o;
    lorac_train_opts_default(&o);
    o.epochs = cli_int(&a, "epochs", appx ? 5 : 1, 1, 100000);
    o.batch_size = cli_int(&a, "batch", 8, 1, 65536);
    o.grad_accum = cli_int(&a, "grad-accum", 1, 1, 65536);
    o.max_steps = cli_int(&a, "max-steps", 0, 0, 1 << 30);
    o.lr = (float)cli_num(&a, "lr", appx ? 8e-4 : 1e-4, 0, 10);
    o.weight_decay = (float)cli_num(&a, "weight-decay", appx ? 0.1 : 0.01, 0, 10);
    o.warmup_steps = cli_int(&a, "warmup", 0, 0, 1 << 30);
    const char *sch = cli_str(&a, "schedule", "constant");
    if (!strcmp(sch, "constant")) o.schedule = 0;
    else if (!strcmp(sch, "linear")) o.schedule = 1;
    else if (!strcmp(sch, "cosine")) o.schedule = 2;
    else cli_die("train", EXIT_USAGE, "--schedule '%s': expected constant, linear or cosine", sch);
    o.clip = (float)cli_num(&a, "clip", 0, 0, 1e9);
    o.eval_every = cli_int(&a, "eval-every", 0, 0, 1 << 30);
    o.skip_nonfinite = cli_has(&a, "skip-nonfinite");
    o.seed = cli_u64(&a, "seed", 123);
    o.progress = cli_progress;
    int n_last;
    cli_method_parse("train", "--method", cli_str(&a, "method", "lora"), &n_last);
    const char *out = cli_str(&a, "out", NULL);
    char mpath[1200];
    if (out) {
        char probe[1200];
        if (lorac_file_exists(lorac_path_join(probe, sizeof probe, out, "adapter_config.json")) && !cli_has(&a, "overwrite"))
            cli_die("train", EXIT_USAGE, "%s already holds an adapter; hint: choose another --out or pass --overwrite", out);
        o.metrics_path = lorac_path_join(mpath, sizeof mpath, out, "metrics.jsonl");
    }

    lorac_model *m;
    lorac_tokenizer *tok;
    cli_load_model(&a, &m, &tok);

    lorac_lora_config lc;
    cli_lora_config(&a, &lc);
    cli_splits sp;
    cli_load_splits(&a, &sp, 0);
    if (sp.task == LORAC_TASK_CLS) cli_check("train", lorac_model_add_head(m, sp.train.n_labels, 1, lc.seed));
    cli_apply_method(&a, m, &lc, 1);
    cli_print_trainable(m, stderr);

    cli_tokenized tk;
    cli_tokenize_splits(&a, &sp, tok, m, &tk);

    o.task = sp.task;
    if (out) { /* created only now that the model and data have loaded */
        cli_check("train", lorac_mkdirs(out));
        remove(mpath); /* metrics of an earlier run into the same --out (allowed by --overwrite) */
    }
    lorac_train_result r;
    cli_check("train", lorac_train(m, &tk.train, tk.val.n ? &tk.val : NULL, &o, &r));
    fprintf(stderr, "trained %d steps in %.1f s: %.1f tokens/s (%.1f incl. padding), last-epoch loss %.4f\n", r.steps,
            r.seconds, r.tokens_per_s, r.seconds > 0 ? r.padded_tokens / r.seconds : 0.0, r.final_loss);

    cli_results res;
    cli_evaluate_splits(&a, m, &tk, sp.task, o.batch_size, &res);
    res.train_seconds = r.seconds;
    res.tokens_per_s = r.tokens_per_s;
    res.steps = r.steps;
    lorac_count_params(m, &res.trainable, &res.all);
    res.peak_rss = lorac_peak_rss();
    if (out) {
        lorac_adapter_meta meta = {cli_str(&a, "model", NULL), sp.task == LORAC_TASK_CLS ? "SEQ_CLS" : "CAUSAL_LM",
                                   m->n_classes, (const char *const *)sp.train.label_names};
        if (!strcmp(cli_str(&a, "method", "lora"), "lora")) cli_check("train", lorac_adapter_save(m, &lc, &meta, out));
        cli_write_results(&a, out, &res, &sp);
        fprintf(stderr, "adapter and results written to %s\n", out);
    }
    cli_print_results(&a, &res, &sp);
    cli_tokenized_free(&tk);
    cli_splits_free(&sp);
    lorac_tokenizer_free(tok);
    lorac_model_free(m);
    return 0;
}
