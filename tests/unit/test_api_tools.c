/* test_api_tools.c - the public calls lorac info / modules / eval / merge
 * are built on (include/lorac.h, "Inspecting, evaluating, merging"):
 *  - misuse answered by status codes and one-line messages: NULL handles,
 *    wrong struct sizes, bad splits / batches / ids / formats, calls in the
 *    wrong order (merge without an adapter, twice; save before merging);
 *  - lorac_data_load + lorac_llm_score agree with lorac_llm_evaluate on the
 *    same split and seed, and count what they load;
 *  - lorac_llm_logits: the LM logits' argmax is the greedy next token;
 *  - lorac_llm_merge_requant: the fp32 merge computes what the unmerged
 *    adapter does, the report counts the adapted modules, the re-quantized
 *    weights change the outputs a little, and the written checkpoint opens
 *    and computes the merge;
 *  - lorac_llm_param: the base parameters add up to params_all, each LoRA
 *    pair's shapes match its module; lorac_llm_create / lorac_llm_add_head.
 * Runs on the tiny GPT-2 fixture with a WordPiece vocabulary written here. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac.h"
#include "testutil.h"

static char tiny[1024], vocab[1024], sms[1024], adapter[1024];

static void fixtures(void) {
    snprintf(tiny, sizeof tiny, "%s", test_src_path("tests/fixtures/models/tiny_gpt2"));
    snprintf(adapter, sizeof adapter, "%s", test_src_path("tests/fixtures/parity/tiny_gpt2_peft_adapter"));
    const char *dir = test_tmpdir();
    test_write_sms_fixture(dir, vocab, sms, sizeof vocab);
}

static lorac_llm *open_tiny(void) {
    lorac_llm_opts o;
    lorac_llm_opts_init(&o);
    o.tokenizer = vocab;
    lorac_llm *llm = NULL;
    CHECK_OK(lorac_llm_open(tiny, &o, &llm));
    return llm;
}

static void misuse(void) {
    lorac_llm *out = (lorac_llm *)1;
    CHECK_ERR(lorac_llm_create(NULL, &out), LORAC_ERR_ARG, "config_json");
    CHECK(out == NULL, "a failed create leaves *out NULL");
    CHECK(lorac_llm_create("/nonexistent/config.json", &out) != LORAC_OK && strstr(lorac_last_error(), "config.json"),
          "missing config: %s", lorac_last_error());
    CHECK_ERR(lorac_llm_add_head(NULL, 2, NULL, 1), LORAC_ERR_ARG, "llm");
    lorac_llm_param_info pi = {.size = sizeof pi};
    CHECK_ERR(lorac_llm_param(NULL, 0, &pi), LORAC_ERR_ARG, "llm");
    CHECK(lorac_llm_param_count(NULL) == -1, "param count of NULL is -1");
    lorac_data *set = (lorac_data *)1;
    lorac_data_config dc = {0};
    dc.data = sms;
    CHECK_ERR(lorac_data_load(NULL, &dc, 1, &set), LORAC_ERR_ARG, "llm");
    CHECK(set == NULL, "a failed lorac_data_load leaves *out NULL");
    lorac_data_free(NULL);
    lorac_data_info ei = {.size = sizeof ei};
    CHECK_ERR(lorac_data_get_info(NULL, &ei), LORAC_ERR_ARG, "data");
    CHECK(lorac_data_label(NULL, 0, NULL) == NULL, "label of NULL is NULL");
    lorac_split_scores sc;
    CHECK_ERR(lorac_llm_score(NULL, NULL, 2, 0, NULL, &sc), LORAC_ERR_ARG, "llm");
    float *y = (float *)1;
    size_t n = 7;
    CHECK_ERR(lorac_llm_logits(NULL, (const int[]){1}, 1, 1, &y, &n), LORAC_ERR_ARG, "llm");
    CHECK(y == NULL && n == 0, "a failed logits call leaves *out NULL, *n 0");
    CHECK_ERR(lorac_llm_merge_requant(NULL, NULL, NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_use_requantized(NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_save_merged(NULL, "x"), LORAC_ERR_ARG, "llm");
    lorac_llm_merge_opts_init(NULL); /* ignored */

    lorac_llm *llm = open_tiny();
    if (!llm) return;
    /* wrong sizes */
    lorac_llm_param_info bad = {.size = 3};
    CHECK_ERR(lorac_llm_param(llm, 0, &bad), LORAC_ERR_ARG, "size");
    CHECK_ERR(lorac_llm_param(llm, -1, &pi), LORAC_ERR_ARG, "index -1");
    CHECK_ERR(lorac_llm_param(llm, lorac_llm_param_count(llm), &pi), LORAC_ERR_ARG, "index");
    lorac_llm_merge_opts mo;
    lorac_llm_merge_opts_init(&mo);
    mo.size = 1;
    CHECK_ERR(lorac_llm_merge_requant(llm, &mo, NULL), LORAC_ERR_ARG, "size");
    lorac_llm_merge_opts_init(&mo);
    mo.format = (lorac_merged_format)7;
    CHECK_ERR(lorac_llm_merge_requant(llm, &mo, NULL), LORAC_ERR_ARG, "format 7");
    /* wrong order: nothing applied, nothing merged */
    CHECK_ERR(lorac_llm_merge_requant(llm, NULL, NULL), LORAC_ERR_ARG, "no adapter applied");
    CHECK_ERR(lorac_llm_use_requantized(llm), LORAC_ERR_ARG, "no re-quantized");
    CHECK_ERR(lorac_llm_save_merged(llm, test_tmpdir()), LORAC_ERR_ARG, "nothing merged");
    /* bad values */
    CHECK_ERR(lorac_llm_add_head(llm, 0, NULL, 1), LORAC_ERR_ARG, "n_classes 0");
    CHECK_ERR(lorac_llm_add_head(llm, 2, "xavier", 1), LORAC_ERR_ARG, "xavier");
    CHECK_ERR(lorac_llm_logits(llm, (const int[]){1, 2}, 1, 0, &y, &n), LORAC_ERR_ARG, "T 0");
    CHECK_ERR(lorac_llm_logits(llm, (const int[]){1, 100000}, 1, 2, &y, &n), LORAC_ERR_ARG, "ids[1] = 100000");
    CHECK_ERR(lorac_llm_logits(llm, NULL, 1, 1, &y, &n), LORAC_ERR_ARG, "ids");
    dc.data = "/nonexistent/rows.tsv";
    CHECK(lorac_data_load(llm, &dc, 1, &set) == LORAC_ERR_IO && set == NULL && strstr(lorac_last_error(), "rows.tsv"),
          "missing data file: %s", lorac_last_error());
    dc.data = sms;
    dc.task = "poetry";
    CHECK_ERR(lorac_data_load(llm, &dc, 1, &set), LORAC_ERR_ARG, "poetry");
    dc.task = NULL;
    dc.max_len = 100000;
    CHECK_ERR(lorac_data_load(llm, &dc, 1, &set), LORAC_ERR_ARG, "max_len");
    dc.max_len = 0;
    dc.whole = 1;
    CHECK_OK(lorac_data_load(llm, &dc, 1, &set));
    CHECK_ERR(lorac_llm_score(llm, set, 3, 0, NULL, &sc), LORAC_ERR_ARG, "split 3");
    CHECK_ERR(lorac_llm_score(llm, set, 2, -1, NULL, &sc), LORAC_ERR_ARG, "batch -1");
    CHECK_ERR(lorac_llm_score(llm, set, 2, 0, NULL, &sc), LORAC_ERR_ARG, "classification needs");
    lorac_data_free(set);
    /* a GGUF re-quantization needs a .gguf base */
    CHECK_OK(lorac_llm_adapter_apply(llm, adapter));
    mo.format = LORAC_MERGED_GGUF;
    CHECK_ERR(lorac_llm_merge_requant(llm, &mo, NULL), LORAC_ERR_ARG, ".gguf");
    lorac_llm_close(llm);
    /* a set tokenized with ids beyond the model's vocabulary (GPT-2's tokenizer over the tiny fixture's 101) */
    lorac_llm_opts big;
    lorac_llm_opts_init(&big);
    big.tokenizer = test_data_path("gpt2_tokenizer");
    if (lorac_llm_open(tiny, &big, &llm) == LORAC_OK) {
        CHECK_OK(lorac_llm_add_head(llm, 2, NULL, 1));
        CHECK_OK(lorac_data_load(llm, &dc, 1, &set));
        CHECK_ERR(lorac_llm_score(llm, set, 2, 0, NULL, &sc), LORAC_ERR_ARG, "vocabulary");
        lorac_data_free(set);
        lorac_llm_close(llm);
    } else {
        printf("test_api_tools: no %s, the vocabulary check is not run (%s)\n", big.tokenizer, lorac_last_error());
    }
    /* a model without a tokenizer cannot tokenize a data set */
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/config.json", tiny);
    CHECK_OK(lorac_llm_create(cfg, &llm));
    CHECK_ERR(lorac_data_load(llm, &dc, 1, &set), LORAC_ERR_ARG, "tokenizer");
    lorac_llm_close(llm);
}

/* The evaluation set scores what lorac_llm_evaluate scores, split by split. */
static void evalset_matches_evaluate(void) {
    lorac_llm *llm = open_tiny();
    if (!llm) return;
    CHECK_OK(lorac_llm_add_head(llm, 2, "torch", 7));
    lorac_data_config dc = {0};
    dc.data = sms;
    dc.split_train = 0.5;
    dc.split_val = 0.25;
    lorac_data *set = NULL;
    CHECK_OK(lorac_data_load(llm, &dc, 5, &set));
    if (!set) {
        lorac_llm_close(llm);
        return;
    }
    lorac_data_info in = {.size = sizeof in};
    CHECK_OK(lorac_data_get_info(set, &in));
    CHECK(in.n[0] + in.n[1] + in.n[2] == 80 && in.n[0] == 40 && in.n[1] == 20 && !strcmp(in.task, "classify") &&
          in.n_labels == 2, "split 80 rows as %d / %d / %d, task %s, %d labels", in.n[0], in.n[1], in.n[2], in.task,
          in.n_labels);
    int c0 = 0, c1 = 0;
    const char *l0 = lorac_data_label(set, 0, &c0), *l1 = lorac_data_label(set, 1, &c1);
    CHECK(l0 && l1 && !strcmp(l0, "ham") && !strcmp(l1, "spam") && c0 + c1 == in.n[0] && lorac_data_label(set, 2, NULL) == NULL,
          "labels %s (%d), %s (%d)", l0 ? l0 : "-", c0, l1 ? l1 : "-", c1);
    lorac_train_report ref;
    CHECK_OK(lorac_llm_evaluate(llm, &dc, 8, 5, &ref));
    const lorac_split_scores *want[3] = {&ref.train, &ref.val, &ref.test};
    for (int i = 0; i < 3; i++) {
        lorac_split_scores sc;
        CHECK_OK(lorac_llm_score(llm, set, i, 8, NULL, &sc));
        CHECK(sc.n == want[i]->n && fabs(sc.loss - want[i]->loss) < 1e-9 && fabs(sc.acc - want[i]->acc) < 1e-12,
              "split %d: n %d loss %.9f acc %.4f, lorac_llm_evaluate: n %d loss %.9f acc %.4f", i, sc.n, sc.loss, sc.acc,
              want[i]->n, want[i]->loss, want[i]->acc);
    }
    lorac_data_free(set);
    lorac_llm_close(llm);
}

static int argmax(const float *x, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

static double rel_diff(const float *a, const float *b, size_t n) {
    double se = 0, sr = 0;
    for (size_t i = 0; i < n; i++) {
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        sr += (double)b[i] * b[i];
    }
    return sqrt(se / (sr > 0 ? sr : 1));
}

/* Logits, merging, re-quantizing, writing and reading back. */
static void merge_round_trip(void) {
    lorac_llm *llm = open_tiny();
    if (!llm) return;
    lorac_llm_info li = {.size = sizeof li};
    CHECK_OK(lorac_llm_get_info(llm, &li));
    const int ids[2 * 5] = {12, 13, 14, 15, 16, 5, 6, 7, 8, 9}, B = 2, T = 5;
    float *base = NULL, *unmerged = NULL, *merged = NULL, *requant = NULL, *reread = NULL;
    size_t n = 0, n2 = 0;
    CHECK_OK(lorac_llm_logits(llm, ids, B, T, &base, &n));
    CHECK(n == (size_t)B * T * li.vocab_size, "LM logits: %zu floats for %d x %d x %d", n, B, T, li.vocab_size);
    /* the last position's argmax is the greedy next token */
    lorac_gen_params g;
    lorac_gen_params_init(&g);
    g.max_new = 1;
    g.no_eos_stop = 1;
    int *next = NULL, nn = 0;
    CHECK_OK(lorac_llm_generate_ids(llm, ids, T, &g, NULL, NULL, &next, &nn, NULL));
    CHECK(base && nn == 1 && next[0] == argmax(base + (size_t)(T - 1) * li.vocab_size, li.vocab_size),
          "greedy token %d vs the logits' argmax", nn ? next[0] : -1);
    lorac_free(next);

    CHECK_OK(lorac_llm_adapter_apply(llm, adapter));
    int adapted = 0;
    for (int i = 0; i < li.n_modules; i++) {
        lorac_module_info mi;
        CHECK_OK(lorac_llm_module(llm, i, &mi));
        adapted += mi.lora_r > 0;
    }
    CHECK_OK(lorac_llm_logits(llm, ids, B, T, &unmerged, &n2));
    lorac_llm_merge_report r = {.size = sizeof r};
    CHECK_OK(lorac_llm_merge_requant(llm, NULL, &r));
    CHECK(adapted > 0 && r.adapted == adapted, "report: %d adapted, modules with LoRA: %d", r.adapted, adapted);
    CHECK(r.fp32_max > 0 && r.fp32_rms > 0 && r.fp32_rms <= r.fp32_max && r.fp32_max < 1e-6,
          "fp32 bound rms %g max %g", r.fp32_rms, r.fp32_max);
    CHECK(r.requantized && !strcmp(r.formats, "NF4") && r.tensors == adapted && r.rms_err > 0 && r.max_err >= r.rms_err,
          "re-quantized figures: %d, '%s', %d tensors, rms %g max %g (%s)", r.requantized, r.formats, r.tensors,
          r.rms_err, r.max_err, r.note);
    CHECK_ERR(lorac_llm_merge_requant(llm, NULL, NULL), LORAC_ERR_ARG, "merged already");
    CHECK_OK(lorac_llm_logits(llm, ids, B, T, &merged, &n2));
    const double d_adapter = base && unmerged ? rel_diff(base, unmerged, n) : 0;
    const double d_merge = unmerged && merged ? rel_diff(merged, unmerged, n) : 1;
    CHECK(d_adapter > 1e-4 && d_merge < 1e-5, "the adapter moves the logits by %g; the fp32 merge is %g off", d_adapter,
          d_merge);
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/merged", test_tmpdir());
    CHECK_OK(lorac_llm_save_merged(llm, dir)); /* fp32: before the re-quantized weights go in */
    CHECK_OK(lorac_llm_use_requantized(llm));
    CHECK_OK(lorac_llm_logits(llm, ids, B, T, &requant, &n2));
    const double d_rq = requant && merged ? rel_diff(requant, merged, n) : 0;
    CHECK(d_rq > 1e-6 && d_rq < 0.5, "the NF4 weights move the logits by %g (some, not all)", d_rq);
    lorac_llm_close(llm);

    lorac_llm_opts o;
    lorac_llm_opts_init(&o);
    o.no_tokenizer = 1;
    lorac_llm *back = NULL;
    CHECK_OK(lorac_llm_open(dir, &o, &back));
    if (back) CHECK_OK(lorac_llm_logits(back, ids, B, T, &reread, &n2));
    CHECK(reread && merged && rel_diff(reread, merged, n) < 1e-6, "the written checkpoint computes the merge");
    lorac_llm_close(back);
    lorac_free(base);
    lorac_free(unmerged);
    lorac_free(merged);
    lorac_free(requant);
    lorac_free(reread);
}

/* The parameter list: base weights add up to params_all; LoRA pairs fit their modules. */
static void params(void) {
    char cfg[1100];
    snprintf(cfg, sizeof cfg, "%s/config.json", tiny);
    lorac_llm *fresh = NULL, *llm = open_tiny();
    CHECK_OK(lorac_llm_create(cfg, &fresh));
    if (!llm || !fresh) {
        lorac_llm_close(llm);
        lorac_llm_close(fresh);
        return;
    }
    lorac_llm_info a = {.size = sizeof a}, b = {.size = sizeof b};
    CHECK_OK(lorac_llm_get_info(llm, &a));
    CHECK_OK(lorac_llm_get_info(fresh, &b));
    CHECK(a.n_layers == b.n_layers && a.dim == b.dim && a.params_all == b.params_all && a.head_dim == b.head_dim &&
          a.ffn_dim == b.ffn_dim && a.tied == b.tied && strstr(a.path, "tiny_gpt2"),
          "config.json alone: %d layers, dim %d, %lld params (checkpoint: %d, %d, %lld); path '%s'", b.n_layers, b.dim,
          (long long)b.params_all, a.n_layers, a.dim, (long long)a.params_all, a.path);
    CHECK(lorac_llm_tok(fresh) == NULL, "a created model has no tokenizer");
    CHECK_OK(lorac_llm_add_head(fresh, 3, NULL, 1));
    CHECK_OK(lorac_llm_get_info(fresh, &b));
    CHECK(b.n_classes == 3, "add_head: %d classes", b.n_classes);
    int found_head = 0;
    for (int i = 0; i < lorac_llm_param_count(fresh); i++) {
        lorac_llm_param_info p = {.size = sizeof p};
        CHECK_OK(lorac_llm_param(fresh, i, &p));
        found_head |= p.ndim == 2 && p.shape[0] == 3 && p.shape[1] == b.dim;
    }
    CHECK(found_head, "the new head is listed, [3, %d]", b.dim);
    lorac_llm_close(fresh);

    CHECK_OK(lorac_llm_adapter_apply(llm, adapter));
    CHECK_OK(lorac_llm_get_info(llm, &a));
    int64_t base_sum = 0, adapter_sum = 0;
    int n_a = 0, n_b = 0, pairs_ok = 1, prev_base = -1;
    for (int i = 0; i < lorac_llm_param_count(llm); i++) {
        lorac_llm_param_info p = {.size = sizeof p};
        CHECK_OK(lorac_llm_param(llm, i, &p));
        if (p.kind == LORAC_PARAM_BASE) {
            base_sum += p.ndim == 2 ? p.shape[0] * p.shape[1] : p.shape[0];
            prev_base = i;
            continue;
        }
        adapter_sum += p.ndim == 2 ? p.shape[0] * p.shape[1] : p.shape[0];
        /* an adapter tensor follows its base weight: A [parts*r, in], B [out, r] */
        n_a += p.kind == LORAC_PARAM_LORA_A;
        n_b += p.kind == LORAC_PARAM_LORA_B;
        if (p.kind == LORAC_PARAM_LORA_A) pairs_ok &= p.ndim == 2 && p.shape[0] == (int64_t)p.r * p.parts && p.r > 0;
        if (p.kind == LORAC_PARAM_LORA_B) pairs_ok &= p.ndim == 2 && p.shape[1] == p.r;
        pairs_ok &= prev_base >= 0 && p.scale > 0 && strstr(p.name, "lora_") != NULL;
    }
    int adapted = 0;
    for (int i = 0; i < a.n_modules; i++) {
        lorac_module_info mi;
        CHECK_OK(lorac_llm_module(llm, i, &mi));
        adapted += mi.lora_r > 0;
    }
    /* PEFT's "all params": the base's and the adapter's, each tensor once */
    CHECK(base_sum > 0 && adapter_sum > 0 && base_sum + adapter_sum == a.params_all,
          "base weights %lld + adapter %lld, all params %lld", (long long)base_sum, (long long)adapter_sum,
          (long long)a.params_all);
    CHECK(n_a == adapted && n_b == adapted && pairs_ok, "%d lora_A, %d lora_B for %d adapted modules (shapes ok: %d)", n_a,
          n_b, adapted, pairs_ok);
    lorac_llm_close(llm);
}

int main(void) {
    fixtures();
    misuse();
    evalset_matches_evaluate();
    merge_round_trip();
    params();
    return test_summary("test_api_tools");
}
