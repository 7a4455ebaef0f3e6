/* lorac merge - fold an adapter into its base model and write the result:
 * an ordinary Hugging Face checkpoint in fp32 (PEFT's merge_and_unload +
 * save), or re-quantized (--requantize): for a GGUF base the GGUF file again
 * with the adapted tensors in their own formats (same), or a Hugging Face
 * checkpoint in bitsandbytes' NF4 serialization (nf4). Either way it reports
 * the error each path introduces: on the weights (lorac_llm_merge_report), and
 * on the outputs of a probe batch against the unmerged adapter
 * (lorac_llm_logits). --method qlora loads the base as training did
 * (quantized), so the merge starts from the weights the adapter was trained
 * against. On the public API only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_data.h"
#include "cli_evalset.h"

static const cli_opt merge_opts[] = {
    {"model", "PATH", "base model: Hugging Face directory or .gguf file (required)"},
    {"adapter", "DIR", "adapter directory (lorac train or PEFT save_pretrained) (required)"},
    {"out", "PATH", "output directory for config.json, model.safetensors and tokenizer files; with --requantize "
                    "a .gguf file (required)"},
    {"requantize", "F", "write the merged model quantized again: same (a .gguf base: the GGUF file, every adapted "
                        "tensor in its own format (any GGML block type lorac reads, F16, F32), every other byte as in the base; "
                        "--out FILE.gguf) | nf4 (a Hugging Face directory in bitsandbytes' NF4 serialization)"},
    CLI_QBASE_OPTS,
    {"rounding", "R", "re-quantizing: nearest (each weight to its nearest level, as the formats' own quantizers) | "
                      "stochastic (to the level below or above at random, unbiased: a LoRA delta smaller than half a "
                      "step survives on average) (default stochastic)"},
    {"tokenizer", "DIR", "copy tokenizer files from DIR (default: the base model directory)"},
    {"overwrite", NULL, "allow --out to replace a model already there"},
    {"json", NULL, "print the error report as one JSON object on stdout"},
    CLI_DATA_OPTS,
    {"seed", "N", "seed for --balance / --split (default 123, as lorac train)"},
    {"batch", "N", "evaluation batch size (default 8)"},
    {"threads", "N", "threads (default: OMP_NUM_THREADS or all cores)"},
    {NULL, NULL, NULL}};

/* ---- the probe: outputs of the unmerged adapter against a merged model ---- */

enum { PROBE_B = 2, PROBE_T = 64 };

typedef struct probe {
    int ids[PROBE_B * PROBE_T], B, T;
    int cls;    /* the outputs are class logits (a classification head) */
    float *ref; /* the unmerged adapter's outputs */
    size_t n;
} probe;

/* Pseudo-random token ids (fixed seed): the same probe every run. */
static void probe_init(const char *cmd, lorac_llm *llm, probe *p) {
    lorac_llm_info in = {.size = sizeof in};
    cli_check(cmd, lorac_llm_get_info(llm, &in));
    p->B = PROBE_B;
    p->T = in.n_ctx > 0 && in.n_ctx < PROBE_T ? in.n_ctx : PROBE_T;
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < p->B * p->T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p->ids[i] = (int)((s >> 33) % (uint64_t)in.vocab_size);
    }
    p->cls = in.n_classes > 0;
    cli_check(cmd, lorac_llm_logits(llm, p->ids, p->B, p->T, &p->ref, &p->n));
}

/* Relative RMS and max abs difference of the llm's probe outputs from the reference. */
static void probe_error(const char *cmd, lorac_llm *llm, const probe *p, double *rel_rms, double *max_abs) {
    float *y;
    size_t n;
    cli_check(cmd, lorac_llm_logits(llm, p->ids, p->B, p->T, &y, &n));
    double se = 0, sr = 0, mx = 0;
    for (size_t i = 0; i < p->n && i < n; i++) {
        const double d = (double)y[i] - p->ref[i];
        se += d * d;
        sr += (double)p->ref[i] * p->ref[i];
        mx = fmax(mx, fabs(d));
    }
    lorac_free(y);
    *rel_rms = sr > 0 ? sqrt(se / sr) : sqrt(se);
    *max_abs = mx;
}

/* ---- the report ------------------------------------------------------------ */

typedef struct merge_report {
    int adapted, requant;          /* modules merged; a re-quantized file was written */
    const char *rounding;
    const probe *p;
    const lorac_llm_merge_report *mr;  /* the library's: the fp32 weight bound, the re-quantized figures */
    double fp32_rel, fp32_max;     /* the fp32 merge's probe outputs */
    double rq_rel, rq_max;         /* ... the re-quantized weights' */
    int test_n;                    /* -1: no --data */
    double loss[3], acc[3];        /* unmerged, fp32 merge, re-quantized (NAN / < 0: not measured) */
} merge_report;

static void print_report(const merge_report *r, int json) {
    const char *fmts = r->mr->formats;
    const lorac_llm_merge_report *rq = r->mr->requantized ? r->mr : NULL; /* NULL: no re-quantized figures */
    const char *probe_what = r->p->cls ? "class logits" : "LM logits";
    if (json) {
        printf("{\"adapted\": %d, \"written\": \"%s\", \"probe\": \"%s of %dx%d pseudo-random tokens\", "
               "\"fp32\": {\"weight_rms_err_bound\": %.4g, \"weight_max_err_bound\": %.4g, \"out_rel_rms\": %.4g, \"out_max_abs\": %.4g}",
               r->adapted, r->requant ? "requantized" : "fp32", probe_what, r->p->B, r->p->T, r->mr->fp32_rms, r->mr->fp32_max,
               r->fp32_rel, r->fp32_max);
        if (rq)
            printf(", \"requantized\": {\"formats\": \"%s\", \"rounding\": \"%s\", \"tensors\": %d, \"skipped\": %d, \"rms_w\": %.4g, "
                   "\"rms_delta\": %.4g, \"weight_rms_err\": %.4g, \"weight_max_err\": %.4g, \"delta_kept\": %.4f, "
                   "\"out_rel_rms\": %.4g, \"out_max_abs\": %.4g}",
                   fmts, r->rounding, rq->tensors, rq->skipped, rq->rms_w, rq->rms_delta, rq->rms_err, rq->max_err, rq->kept,
                   r->rq_rel, r->rq_max);
        if (r->test_n >= 0) {
            static const char *const what[3] = {"adapter", "fp32", "requantized"};
            printf(", \"test\": {\"n\": %d", r->test_n);
            for (int k = 0; k < 3; k++) {
                if (isnan(r->loss[k])) continue;
                printf(", \"%s_loss\": %.6f", what[k], r->loss[k]);
                if (r->acc[k] >= 0) printf(", \"%s_acc\": %.6f", what[k], r->acc[k]);
            }
            printf("}");
        }
        printf("}\n");
        return;
    }
    printf("merge error, %d adapted modules; outputs: %s of %d x %d pseudo-random tokens against the unmerged adapter\n",
           r->adapted, probe_what, r->p->B, r->p->T);
    printf("  fp32 merge%s: weights within one float rounding (RMS <= %.2g, max <= %.2g); outputs rel. RMS %.3g, max %.3g\n",
           r->requant ? "" : " (written)", r->mr->fp32_rms, r->mr->fp32_max, r->fp32_rel, r->fp32_max);
    if (rq)
        printf("  re-quantized to %s (%s rounding)%s: weights RMS %.3g (%.2f%% of RMS W' %.3g; %.2fx the RMS LoRA delta %.3g), "
               "max %.3g; LoRA delta kept %.1f%%; outputs rel. RMS %.3g, max %.3g\n", fmts, r->rounding,
               r->requant ? " (written)" : "", rq->rms_err, 100 * rq->rms_err / rq->rms_w, rq->rms_w,
               rq->rms_delta > 0 ? rq->rms_err / rq->rms_delta : 0.0, rq->rms_delta, rq->max_err, 100 * rq->kept, r->rq_rel,
               r->rq_max);
    if (r->test_n >= 0) {
        static const char *const what[3] = {"adapter (unmerged)", "fp32 merge", "re-quantized"};
        printf("  test set (%d examples):", r->test_n);
        for (int k = 0; k < 3; k++) {
            if (isnan(r->loss[k])) continue;
            if (r->acc[k] >= 0)
                printf("%s %s %.2f%% (loss %.4f)", k ? ";" : "", what[k], 100 * r->acc[k], r->loss[k]);
            else
                printf("%s %s loss %.4f", k ? ";" : "", what[k], r->loss[k]);
        }
        printf("\n");
    }
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int cmd_merge(int argc, char **argv) {
    cli_args a;
    cli_parse(&a, "merge",
              "usage: lorac merge --model PATH --adapter DIR --out PATH [--requantize same|nf4] [--data FILE ...] [options]\n\n"
              "With --data (and the same --balance/--split/--seed as training) the test split is evaluated with the\n"
              "adapter unmerged, merged in fp32 and re-quantized, beside the error report.",
              merge_opts, argc, argv);
    cli_set_threads(&a);
    const char *ad = cli_str(&a, "adapter", NULL), *out = cli_str(&a, "out", NULL), *base = cli_str(&a, "model", NULL);
    const char *rqf = cli_str(&a, "requantize", NULL);
    const int json = cli_has(&a, "json");
    const char *rounding = cli_str(&a, "rounding", "stochastic");
    if (strcmp(rounding, "nearest") && strcmp(rounding, "stochastic"))
        cli_die("merge", EXIT_USAGE, "--rounding '%s': expected nearest or stochastic", rounding);
    const int stochastic = !strcmp(rounding, "stochastic");
    if (rqf && strcmp(rqf, "same") && strcmp(rqf, "nf4"))
        cli_die("merge", EXIT_USAGE, "--requantize '%s': expected same (a .gguf base's own formats) or nf4", rqf);
    (void)cli_qbase_is_qlora(&a); /* a usage error for a --method other than lora / qlora */
    const int requant = rqf != NULL, to_nf4 = rqf && !strcmp(rqf, "nf4");
    if (!ad) cli_die("merge", EXIT_USAGE, "--adapter is required (a directory with adapter_config.json)");
    if (!out) cli_die("merge", EXIT_USAGE, "--out is required (the directory, or with --requantize the .gguf file, to write)");
    if (requant && !to_nf4 && (!base || !ends_with(base, ".gguf")))
        cli_die("merge", EXIT_USAGE, "--requantize same needs a .gguf base (its tensors' formats are what the merged weights go "
                "back to); hint: --requantize nf4 writes bitsandbytes' NF4 from any base");
    if (requant && !to_nf4 && !ends_with(out, ".gguf"))
        cli_die("merge", EXIT_USAGE, "--out %s: with --requantize same, --out is the .gguf file to write", out);
    if (to_nf4 && ends_with(out, ".gguf"))
        cli_die("merge", EXIT_USAGE, "--out %s: --requantize nf4 writes a Hugging Face directory, not a .gguf file", out);
    char probe_path[1200];
    if (requant && !to_nf4) snprintf(probe_path, sizeof probe_path, "%s", out);
    else snprintf(probe_path, sizeof probe_path, "%s%smodel.safetensors", out, out[0] && out[strlen(out) - 1] == '/' ? "" : "/");
    if (base && !strcmp(out, base)) cli_die("merge", EXIT_USAGE, "--out is the base model itself; hint: choose another --out");
    if (access(probe_path, F_OK) == 0 && !cli_has(&a, "overwrite"))
        cli_die("merge", EXIT_USAGE, "%s already exists; hint: choose another --out or pass --overwrite", probe_path);

    const int eval = cli_has(&a, "data");
    lorac_llm *llm;
    cli_open(&a, eval, &llm);
    cli_check("merge", lorac_llm_adapter_apply(llm, ad));
    int n = 0;
    lorac_llm_info li = {.size = sizeof li};
    cli_check("merge", lorac_llm_get_info(llm, &li));
    for (int i = 0; i < li.n_modules; i++) {
        lorac_module_info mi;
        cli_check("merge", lorac_llm_module(llm, i, &mi));
        n += mi.lora_r > 0;
    }

    /* the test split, evaluated unmerged / fp32 merge / re-quantized */
    lorac_evalset *set = NULL;
    lorac_split_scores sc;
    int test_n = -1;
    double ev_loss[3] = {NAN, NAN, NAN}, ev_acc[3] = {-1, -1, -1};
    const int batch = cli_int(&a, "batch", 8, 1, 65536);
    if (eval) {
        set = cli_evalset_open(&a, llm, !(cli_has(&a, "split") || cli_has(&a, "balance")),
                               "--data is a classification set but the adapter holds no classification head", 0);
        cli_check("merge", lorac_llm_score(llm, set, 2, batch, &sc));
        test_n = sc.n;
        ev_loss[0] = sc.loss;
        ev_acc[0] = sc.acc;
    }

    probe p;
    probe_init("merge", llm, &p);
    lorac_llm_merge_opts mo;
    lorac_llm_merge_opts_init(&mo);
    mo.format = !requant ? LORAC_MERGED_FP32 : to_nf4 ? LORAC_MERGED_NF4 : LORAC_MERGED_GGUF;
    mo.nearest = !stochastic;
    mo.tokenizer = cli_str(&a, "tokenizer", NULL);
    lorac_llm_merge_report mr = {.size = sizeof mr};
    cli_check("merge", lorac_llm_merge_requant(llm, &mo, &mr));
    if (eval) {
        cli_check("merge", lorac_llm_score(llm, set, 2, batch, &sc));
        ev_loss[1] = sc.loss;
        ev_acc[1] = sc.acc;
    }
    double fp32_rel, fp32_max;
    probe_error("merge", llm, &p, &fp32_rel, &fp32_max);

    /* the re-quantized figures: of the format asked for, else of the base's own (GGUF) or NF4 */
    double rq_rel = 0, rq_max = 0;
    if (!mr.requantized) fprintf(stderr, "note: no re-quantized figures: %s\n", mr.note);
    if (!requant) {
        cli_check("merge", lorac_llm_save_merged(llm, out));
        fprintf(stderr, "merged %d LoRA modules of %s into %s (fp32)\n", n, ad, out);
    }
    if (mr.requantized) { /* the model as the re-quantized file will compute it */
        cli_check("merge", lorac_llm_use_requantized(llm));
        probe_error("merge", llm, &p, &rq_rel, &rq_max);
        if (eval) {
            cli_check("merge", lorac_llm_score(llm, set, 2, batch, &sc));
            ev_loss[2] = sc.loss;
            ev_acc[2] = sc.acc;
        }
    }
    if (requant && !to_nf4) {
        cli_check("merge", lorac_llm_save_merged(llm, out));
        fprintf(stderr, "merged %d LoRA modules of %s into %s (%d tensors re-quantized, every other byte as in %s)\n", n, ad,
                out, mr.tensors, base);
        if (mr.skipped)
            fprintf(stderr, "note: %d adapted module%s (%s%s) %s no tensor of the GGUF file, so %s merged into %s: a "
                    "classification head lives in the adapter or in a fp32 merge (lorac merge without --requantize)\n",
                    mr.skipped, mr.skipped > 1 ? "s" : "", mr.first_skipped, mr.skipped > 1 ? ", ..." : "",
                    mr.skipped > 1 ? "have" : "has", mr.skipped > 1 ? "they are not" : "it is not", out);
    } else if (to_nf4) {
        cli_check("merge", lorac_llm_save_merged(llm, out));
        fprintf(stderr, "merged %d LoRA modules of %s into %s (bitsandbytes NF4: %d adapted Linears re-quantized%s)\n", n, ad,
                out, mr.tensors, mr.skipped ? "; heads in fp32" : "");
    }

    const merge_report rep = {n, requant, rounding, &p, &mr, fp32_rel, fp32_max, rq_rel, rq_max, test_n,
                              {ev_loss[0], ev_loss[1], ev_loss[2]}, {ev_acc[0], ev_acc[1], ev_acc[2]}};
    print_report(&rep, json);
    lorac_free(p.ref);
    lorac_evalset_close(set);
    lorac_llm_close(llm);
    return 0;
}
