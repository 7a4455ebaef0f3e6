/* lorac train - fine-tune a model with LoRA (or full / head-only) on a
 * classification, plain-text or instruction data set, evaluate it on the
 * train / validation / test splits, and save the adapter. On the public
 * API's training stages (lorac.h): lorac_data_load, lorac_llm_prepare,
 * lorac_llm_fit (checkpoints, --resume, Ctrl-C through its stop flag,
 * data-parallel ranks), lorac_llm_score; this file adds the output. */
#define _POSIX_C_SOURCE 200809L /* sigaction (the build defines it too; a file compiles on its own) */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_data.h"

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
    {"loraplus-ratio", "X", "LoRA+: lora_B (and 1-D params) learn at lr * X (PEFT's loraplus_lr_ratio; e.g. 16)"},
    {"loraplus-lr-embedding", "X", "LoRA+: learning rate of embedding LoRA pairs (default 1e-6)"},
    {"loraplus-weight-decay", "X", "LoRA+: weight decay of its groups (default 0, as PEFT: --weight-decay is unused)"},
    {"eval-every", "N", "evaluate every N steps (default: each epoch)"},
    {"skip-nonfinite", NULL, "skip a step whose loss or gradient is NaN/Inf instead of stopping"},
    {"padded-batches", NULL, "pad each batch to its longest example instead of packing the examples end to end"
                             " (same loss and gradients, more work; for comparisons)"},
    {"seed", "N", "seed for data order, splits, LoRA init and dropout (default 123)"},
    {"model-dropout", "config|0", "the model's own dropout in training: config (default: the rates in its config.json,"
                                  " as torch's train mode: BERT's and GPT-2's 0.1) or 0 (off: LoRA dropout only)"},
    {"threads", "N", "threads (default: OMP_NUM_THREADS or all cores)"},
    {"gradient-checkpointing", NULL, "keep only each layer's input and recompute the rest in backward: ~1/layers of"
                                     " the activation memory for ~1/3 more time (decoders)"},
    {"out", "DIR", "write the adapter, metrics.jsonl and results.json here"},
    {"overwrite", NULL, "allow --out to replace an adapter (and checkpoints) already there"},
    {"save-every", "N", "save a resumable checkpoint every N steps and at the end, in OUT/checkpoints"},
    {"keep-checkpoints", "K", "keep the newest K checkpoints (default 2; 0 keeps all)"},
    {"resume", "DIR", "continue from DIR = a run's --out (its newest checkpoint) or OUT/checkpoints/step-N, with that run's options"},
    {"json", NULL, "print the final results as one JSON object on stdout"},
    {"dist-timeout", "S", "under mpirun / srun: give up after S s without an answer from the other ranks (default 300)"},
    {NULL, NULL, NULL}};

static const char *train_usage =
    "usage: lorac train --model PATH --data FILE [options]\n\n"
    "Fine-tune with LoRA, then report accuracy (classification) or loss on the\n"
    "train / validation / test splits. Examples:\n"
    "  lorac train --model smollm2.gguf --data SMSSpamCollection --balance --preset appendix-e --out runs/sms\n"
    "  lorac train --model dir --task lm --data notes.txt --epochs 2 --lr 2e-4 --out runs/notes\n"
    "  lorac train --model dir --data sms.tsv --epochs 3 --save-every 100 --out runs/sms   (Ctrl-C: checkpoint, exit 130)\n"
    "  lorac train --model dir --data sms.tsv --epochs 3 --save-every 100 --resume runs/sms\n\n"
    "A resumed run continues with the same losses, step for step, as one that was never\n"
    "stopped (same options, binary and --threads).\n\n"
    "Data parallel: `mpirun -np N lorac train ...` (or srun) trains one model over N\n"
    "ranks, each on its share of every batch; --batch stays the global batch, so the\n"
    "losses are the one-process run's (to float summation order). Rank 0 prints and\n"
    "writes; --resume works with any N.";

/* ---- Ctrl-C: the first asks for a checkpoint at the next step boundary, the second aborts ---- */

static volatile sig_atomic_t stop_requested;

static void on_sigint(int sig) {
    if (stop_requested) {
        static const char msg[] = "\nlorac train: aborted\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        signal(sig, SIG_DFL);
        raise(sig); /* delivered on return: the default action ends the process */
        return;
    }
    stop_requested = 1;
    static const char msg[] = "\nlorac train: interrupt: stopping at the end of this step; press Ctrl-C again to abort at once\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
}

/* argv as a shell command line (single-quoted where needed), with --resume DIR instead of any given */
static void resume_command(char *buf, size_t n, int argc, char **argv, const char *dir) {
    size_t o = (size_t)snprintf(buf, n, "lorac train");
    const char *extra[] = {"--resume", dir};
    for (int i = 0; i < argc + 2 && o < n; i++) {
        const char *s = i < argc ? argv[i] : extra[i - argc];
        if (i < argc && (!strcmp(s, "--resume") || !strncmp(s, "--resume=", 9))) {
            if (!strcmp(s, "--resume")) i++; /* and its value */
            continue;
        }
        int plain = *s != 0;
        for (const char *p = s; *p; p++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,+-@%", *p)) plain = 0;
        o += (size_t)snprintf(buf + o, n - o, " %s", plain ? s : "'");
        if (plain) continue;
        for (const char *p = s; *p && o < n; p++)
            o += (size_t)snprintf(buf + o, n - o, *p == '\'' ? "'\\''" : "%c", *p);
        if (o < n) o += (size_t)snprintf(buf + o, n - o, "'");
    }
}

/* --model-dropout: 1 = the rates in config.json (default), 0 = off */
static int model_dropout_opt(const cli_args *a) {
    const char *v = cli_str(a, "model-dropout", "config");
    if (!strcmp(v, "config")) return 1;
    if (!strcmp(v, "0")) return 0;
    cli_die("train", EXIT_USAGE, "--model-dropout '%s': expected config (the rates in the model's config.json) or 0 "
            "(off)", v);
}

int cmd_train(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "train", train_usage, cli_train_opts, argc, argv);
    {
        const char *o_ = cli_str(&a, "out", NULL), *r_ = cli_str(&a, "resume", NULL);
        char hint[1400];
        snprintf(hint, sizeof hint, "the newest checkpoint in %s/checkpoints is intact; continue with --resume %s",
                 r_ ? r_ : o_ ? o_ : "OUT", r_ ? r_ : o_ ? o_ : "OUT");
        cli_dist_start(&a, o_ || r_ ? hint : NULL);
    }
    const int writer = cli_is_writer(); /* rank 0 (or the one process) prints and writes */
    const int ranks = lorac_ranks_size(cli_ranks);
    if (cli_ranks) {
        char where[2048];
        cli_check("train", lorac_ranks_describe(cli_ranks, where, sizeof where));
        fprintf(stderr, "data parallel: %d ranks on %s\n", ranks, where);
    }
    cli_set_threads(&a);
    const int appx = cli_has(&a, "preset");
    /* every flag is checked before anything slow happens */
    lorac_train_config c;
    lorac_train_config_init(&c);
    c.epochs = cli_int(&a, "epochs", appx ? 5 : 1, 1, 100000);
    c.batch = cli_int(&a, "batch", 8, 1, 65536);
    if (c.batch < ranks)
        cli_die("train", EXIT_USAGE, "--batch %d is smaller than the %d ranks; hint: --batch is the global batch, "
                "shared out over the ranks: give at least one example per rank", c.batch, ranks);
    c.grad_accum = cli_int(&a, "grad-accum", 1, 1, 65536);
    c.max_steps = cli_int(&a, "max-steps", 0, 0, 1 << 30);
    c.lr = (float)cli_num(&a, "lr", appx ? 8e-4 : 1e-4, 0, 10);
    c.weight_decay = (float)cli_num(&a, "weight-decay", appx ? 0.1 : 0.01, 0, 10);
    c.loraplus_ratio = (float)cli_num(&a, "loraplus-ratio", 0, 0, 1e6);
    c.loraplus_lr_embedding = (float)cli_num(&a, "loraplus-lr-embedding", 1e-6, 0, 10);
    c.loraplus_weight_decay = (float)cli_num(&a, "loraplus-weight-decay", 0, 0, 10);
    c.warmup = cli_int(&a, "warmup", 0, 0, 1 << 30);
    c.schedule = cli_str(&a, "schedule", "constant");
    if (strcmp(c.schedule, "constant") && strcmp(c.schedule, "linear") && strcmp(c.schedule, "cosine"))
        cli_die("train", EXIT_USAGE, "--schedule '%s': expected constant, linear or cosine", c.schedule);
    c.clip = (float)cli_num(&a, "clip", 0, 0, 1e9);
    c.eval_every = cli_int(&a, "eval-every", 0, 0, 1 << 30);
    c.skip_nonfinite = cli_has(&a, "skip-nonfinite");
    c.padded_batches = cli_has(&a, "padded-batches");
    c.gradient_checkpointing = cli_has(&a, "gradient-checkpointing");
    c.model_dropout = model_dropout_opt(&a);
    c.progress = cli_progress;
    int splits_wanted[3];
    cli_eval_splits(&a, splits_wanted); /* checked now, used after training */
    cli_train_config(&a, &c);           /* method, LoRA flags, seed */
    const int is_lora = !strcmp(c.method, "lora") || !strcmp(c.method, "qlora"); /* both save an adapter */
    const char *out = cli_str(&a, "out", NULL);
    c.save_every = cli_int(&a, "save-every", 0, 1, 1 << 30);
    c.keep_checkpoints = cli_int(&a, "keep-checkpoints", 2, 0, 1 << 30);
    const char *resume = cli_str(&a, "resume", NULL);
    char ckpt[1200], run_dir[1200], cdir[1300];
    if (resume) { /* the checkpoint is found before anything slow happens */
        cli_check("train", lorac_checkpoint_find(resume, ckpt, sizeof ckpt, run_dir, sizeof run_dir));
        if (!out && run_dir[0]) out = run_dir;
        c.resume_from = ckpt;
    }
    if (cli_has(&a, "save-every") && !out)
        cli_die("train", EXIT_USAGE, "--save-every needs --out (checkpoints go to OUT/checkpoints)");
    char mpath[1200];
    int clear_checkpoints = 0;
    if (out) { /* every rank checks (so a refusal ends each alike); only rank 0 writes */
        char probe[1200];
        cli_path_join(cdir, sizeof cdir, out, "checkpoints");
        if (!resume && cli_file_exists(cli_path_join(probe, sizeof probe, out, "adapter_config.json")) && !cli_has(&a, "overwrite"))
            cli_die("train", EXIT_USAGE, "%s already holds an adapter; hint: choose another --out or pass --overwrite", out);
        if (!resume && lorac_checkpoint_exists(cdir)) {
            if (!cli_has(&a, "overwrite"))
                cli_die("train", EXIT_USAGE, "%s holds checkpoints of an earlier run; hint: --resume %s continues it, "
                        "--overwrite starts over", out, out);
            clear_checkpoints = 1;
        }
        c.metrics_path = cli_path_join(mpath, sizeof mpath, out, "metrics.jsonl");
        c.checkpoint_dir = cdir; /* a checkpoint on Ctrl-C always; with --save-every also every N steps */
    }

    lorac_llm *llm;
    cli_open(&a, 1, &llm);
    cli_check("train", lorac_train_config_check(&c)); /* --layers, --init: before the data loads */
    lorac_data *data = cli_load_data(&a, llm, 0);
    lorac_data_info di = {.size = sizeof di};
    cli_check("train", lorac_data_get_info(data, &di));
    if (!strcmp(c.method, "head") && strcmp(di.task, "classify"))
        cli_die("train", EXIT_USAGE, "--method head needs a classification task");
    int head_in_full = 0;
    cli_quant_opts_need_qlora(&a, !strcmp(c.method, "qlora"));
    if (!strcmp(c.method, "qlora")) (void)cli_qformat_keep(&a, cli_str(&a, "model", NULL)); /* keep needs a .gguf */
    cli_check("train", lorac_llm_prepare(llm, &c, data, &head_in_full));
    if (!strcmp(c.method, "qlora")) cli_print_quantized_base(llm, "qlora");
    if (head_in_full)
        fprintf(stderr, "note: training the new classification head in full (PEFT's modules_to_save for SEQ_CLS)\n");
    cli_print_params("train", llm, stderr);
    cli_print_tokenized(&a, data);

    if (out && writer) { /* created only now that the model and data have loaded */
        cli_mkdirs("train", out);
        if (!resume) remove(mpath); /* metrics of an earlier run into the same --out (allowed by --overwrite) */
        if (clear_checkpoints) cli_check("train", lorac_checkpoint_clear(cdir));
    }
    /* what a resumed run must share with the checkpoint besides the method
     * and LoRA settings (the library records those) and the trainer's own */
    const char *run_cfg[] = {"qformat", cli_str(&a, "qformat", ""), "qembed", cli_str(&a, "qembed", "on"),
                             "base", cli_str(&a, "base", "fp32"), NULL};
    if (is_lora) c.run_config = run_cfg; /* the LoRA-side settings mean nothing to the other methods */
    if (resume) fprintf(stderr, "resuming from %s\n", ckpt);

    /* Ctrl-C stops at a step boundary with a checkpoint (unless SIGINT is
     * ignored, as for a background job of a non-interactive shell) */
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, NULL, &old_sa);
    if (old_sa.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    c.stop = &stop_requested;
    c.ranks = cli_ranks;
    lorac_fit_report r = {.size = sizeof r};
    lorac_status tst = lorac_llm_fit(llm, &c, data, &r);
    sigaction(SIGINT, &old_sa, NULL);
    lorac_ranks_stats ds; /* the training's communication, before the evaluations add theirs */
    cli_check("train", lorac_ranks_get_stats(cli_ranks, &ds));
    if (tst == LORAC_ERR_CANCELLED && r.stopped) {
        if (r.checkpoint[0]) {
            char cmd[8192];
            resume_command(cmd, sizeof cmd, argc, argv, out);
            fprintf(stderr, "lorac train: interrupted after step %d; checkpoint saved to %s; resume with: %s\n", r.steps,
                    r.checkpoint, cmd);
        } else {
            fprintf(stderr, "lorac train: interrupted after step %d; nothing saved (no --out)\n", r.steps);
        }
        cli_dist_end();
        exit(130);
    }
    cli_check("train", tst);
    if (r.resumed_step) fprintf(stderr, "resumed at step %d of %s\n", r.resumed_step, ckpt);
    if (r.checkpoint[0]) fprintf(stderr, "last checkpoint: %s\n", r.checkpoint);
    if (c.padded_batches)
        fprintf(stderr, "trained %d steps in %.1f s: %.1f tokens/s (%.1f incl. padding), last-epoch loss %.4f\n",
                r.steps, r.seconds, r.tokens_per_s, r.seconds > 0 ? r.padded_tokens / r.seconds : 0.0, r.final_loss);
    else
        fprintf(stderr, "trained %d steps in %.1f s: %.1f tokens/s (packed batches, no padding), last-epoch loss %.4f\n",
                r.steps, r.seconds, r.tokens_per_s, r.final_loss);
    const double step_bytes = r.steps > r.resumed_step ? (double)ds.bytes / (r.steps - r.resumed_step) : 0;
    if (ranks > 1)
        fprintf(stderr, "data parallel: %d ranks; each sent %.2f MB per step (gradients and loss); of the %.1f s of "
                "training and its evaluations, %.2f s (%.1f%%) went to collectives: %.2f s moving data, %.2f s waiting "
                "for the slowest rank\n", ranks, step_bytes / 1e6, r.seconds + r.eval_seconds, ds.seconds,
                r.seconds + r.eval_seconds > 0 ? 100 * ds.seconds / (r.seconds + r.eval_seconds) : 0.0,
                ds.seconds - ds.wait_seconds, ds.wait_seconds);

    cli_results res;
    cli_score_splits(&a, llm, data, c.batch, &res);
    res.train_seconds = r.seconds;
    res.tokens_per_s = r.tokens_per_s;
    res.steps = r.steps;
    lorac_llm_info info = {.size = sizeof info};
    cli_check("train", lorac_llm_get_info(llm, &info));
    res.trainable = info.params_trainable;
    res.all = info.params_all;
    res.peak_rss = cli_peak_rss();
    res.ranks = ranks;
    res.comm_seconds = ds.seconds;
    res.comm_wait_seconds = ds.wait_seconds;
    res.comm_bytes_per_step = step_bytes;
    if (out && writer) {
        if (is_lora) cli_check("train", lorac_llm_adapter_save(llm, out));
        cli_write_results(&a, out, &res);
        fprintf(stderr, "adapter and results written to %s\n", out);
    }
    if (writer) cli_print_results(&a, &res);
    lorac_data_free(data);
    lorac_llm_close(llm);
    cli_dist_end();
    return 0;
}
