/* test_api.c - the public API (include/lorac.h) answers misuse with status
 * codes and one-line messages, never a crash: NULL handles and pointers,
 * option structs of a wrong size, bad paths, an adapter for another base,
 * calls in the wrong order (classify without a head, merge without an
 * adapter, switching an applied adapter), and callbacks that cancel
 * training and stop generation - which must stop where they say. Calls
 * after lorac_llm_close are invalid by contract (lorac.h) and not made here.
 * Runs on the tiny GPT-2 fixture with a WordPiece vocabulary written here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lorac.h"
#include "testutil.h"

static char tiny[1024], vocab[1024], sms[1024], other_adapter[1024];

static void fixtures(void) {
    snprintf(tiny, sizeof tiny, "%s", test_src_path("tests/fixtures/models/tiny_gpt2"));
    snprintf(other_adapter, sizeof other_adapter, "%s", test_src_path("tests/fixtures/parity/tiny_llama_peft_adapter"));
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

static void null_handles(void) {
    lorac_llm *llm = (lorac_llm *)1;
    CHECK_ERR(lorac_llm_open(NULL, NULL, &llm), LORAC_ERR_ARG, "path");
    CHECK(llm == NULL, "a failed open leaves *out NULL");
    CHECK_ERR(lorac_llm_open(tiny, NULL, NULL), LORAC_ERR_ARG, "out");
    lorac_llm_close(NULL);
    lorac_tok_close(NULL);
    lorac_free(NULL);
    lorac_llm_info info = {.size = sizeof info};
    CHECK_ERR(lorac_llm_get_info(NULL, &info), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_generate(NULL, "x", NULL, NULL, NULL, NULL, NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_generate_ids(NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL), LORAC_ERR_ARG, "llm");
    float p[2];
    CHECK_ERR(lorac_llm_classify(NULL, "x", p, 2, NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_train(NULL, NULL, NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_evaluate(NULL, NULL, 0, 0, NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_adapter_load(NULL, "a", "d"), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_adapter_apply(NULL, "d"), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_adapter_use(NULL, "a"), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_adapter_unload(NULL, "a"), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_adapter_save(NULL, "d"), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_merge(NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_export_gguf(NULL, "d", "f", 0, NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_chat(NULL, NULL, NULL, 0, 1, NULL, NULL), LORAC_ERR_ARG, "llm");
    int *ids;
    int n;
    CHECK_ERR(lorac_tok_encode(NULL, "x", 1, 0, &ids, &n), LORAC_ERR_ARG, "t");
    CHECK(lorac_llm_tok(NULL) == NULL && lorac_tok_vocab_size(NULL) == 0 && lorac_tok_eos(NULL) == -1 &&
          lorac_llm_label(NULL, 0) == NULL, "value-returning calls answer NULL handles with NULL / 0 / -1");
    CHECK(!strcmp(lorac_status_name(LORAC_ERR_CANCELLED), "cancelled"), "status name");
    CHECK(!strcmp(lorac_version(), LORAC_VERSION), "version %s", lorac_version());
}

static void wrong_sizes_and_paths(void) {
    lorac_llm_opts o;
    lorac_llm_opts_init(&o);
    o.size = sizeof o - 8; /* as a program built against another header */
    lorac_llm *llm = NULL;
    CHECK_ERR(lorac_llm_open(tiny, &o, &llm), LORAC_ERR_ARG, "size");
    lorac_llm_opts_init(&o);
    o.base = (lorac_base_format)42;
    CHECK_ERR(lorac_llm_open(tiny, &o, &llm), LORAC_ERR_ARG, "base format");
    o.base = LORAC_BASE_GGUF;
    CHECK_ERR(lorac_llm_open(tiny, &o, &llm), LORAC_ERR_ARG, ".gguf");
    CHECK_ERR(lorac_llm_open("/nonexistent/model", NULL, &llm), LORAC_ERR_IO, "/nonexistent/model");
    lorac_tok *t = NULL;
    CHECK(lorac_tok_open("/nonexistent/tok.json", &t) != LORAC_OK && t == NULL && strstr(lorac_last_error(), "tok.json"),
          "tok_open of a bad path: %s", lorac_last_error());

    llm = open_tiny();
    if (!llm) return;
    lorac_llm_info info = {.size = 1};
    CHECK_ERR(lorac_llm_get_info(llm, &info), LORAC_ERR_ARG, "size");
    lorac_gen_params g;
    lorac_gen_params_init(&g);
    g.size = 0;
    CHECK_ERR(lorac_llm_generate(llm, "see", &g, NULL, NULL, NULL, NULL), LORAC_ERR_ARG, "size");
    lorac_gen_params_init(&g);
    g.temperature = -1;
    CHECK_ERR(lorac_llm_generate(llm, "see", &g, NULL, NULL, NULL, NULL), LORAC_ERR_ARG, "temperature");
    const int bad_ids[2] = {5, 100000};
    CHECK_ERR(lorac_llm_generate_ids(llm, bad_ids, 2, NULL, NULL, NULL, NULL, NULL, NULL), LORAC_ERR_ARG, "100000");
    CHECK_ERR(lorac_llm_generate_ids(llm, bad_ids, 0, NULL, NULL, NULL, NULL, NULL, NULL), LORAC_ERR_ARG, "at least one");
    lorac_train_config c;
    lorac_train_config_init(&c);
    c.size += 4;
    CHECK_ERR(lorac_llm_train(llm, &c, NULL), LORAC_ERR_ARG, "size");
    lorac_module_info mi;
    CHECK_ERR(lorac_llm_module(llm, 9999, &mi), LORAC_ERR_ARG, "9999");
    CHECK_ERR(lorac_llm_adapter_apply(llm, "/nonexistent/adapter"), LORAC_ERR_IO, "/nonexistent/adapter");
    lorac_llm_close(llm);
}

static void wrong_order_and_other_base(void) {
    lorac_llm *llm = open_tiny();
    if (!llm) return;
    float p[4];
    CHECK_ERR(lorac_llm_classify(llm, "win a prize", p, 4, NULL), LORAC_ERR_ARG, "classification head");
    CHECK_ERR(lorac_llm_merge(llm), LORAC_ERR_ARG, "no active adapter");
    CHECK_ERR(lorac_llm_adapter_save(llm, test_tmpdir()), LORAC_ERR_ARG, "no adapter");
    CHECK_ERR(lorac_llm_adapter_use(llm, "nope"), LORAC_ERR_ARG, "nope");
    CHECK_ERR(lorac_llm_adapter_unload(llm, "nope"), LORAC_ERR_ARG, "nope");
    /* a Llama adapter over the GPT-2 base: refused, and the llm still works */
    CHECK(lorac_llm_adapter_apply(llm, other_adapter) != LORAC_OK && strlen(lorac_last_error()) > 10,
          "an adapter for another base is refused: %s", lorac_last_error());
    CHECK(lorac_llm_adapter_load(llm, "llama", other_adapter) != LORAC_OK, "... also by name: %s", lorac_last_error());
    lorac_llm_info info = {.size = sizeof info};
    CHECK_OK(lorac_llm_get_info(llm, &info));
    CHECK(info.n_adapters == 0 && info.active_adapter[0] == 0, "nothing was left loaded (%d, '%s')", info.n_adapters,
          info.active_adapter);
    int out_n = -1;
    CHECK_OK(lorac_llm_generate_ids(llm, (const int[]){12, 13}, 2, NULL, NULL, NULL, NULL, &out_n, NULL));
    CHECK(out_n >= 0, "the llm generates after the refusals");
    /* combine with no names, train with a bad schedule: one line each */
    CHECK_ERR(lorac_llm_adapter_combine(llm, "both", NULL, NULL, 0, "linear"), LORAC_ERR_ARG, "n >= 1");
    lorac_train_config c;
    lorac_train_config_init(&c);
    c.data.data = sms;
    c.schedule = "sideways";
    CHECK_ERR(lorac_llm_train(llm, &c, NULL), LORAC_ERR_ARG, "sideways");
    c.schedule = NULL;
    c.data.data = "/nonexistent/data.tsv";
    CHECK(lorac_llm_train(llm, &c, NULL) == LORAC_ERR_IO && strstr(lorac_last_error(), "data.tsv"), "bad data path: %s",
          lorac_last_error());
    lorac_llm_close(llm);
}

typedef struct { int calls, stop_at; } cb_state;

static int cancel_at(const lorac_train_progress *p, void *user) {
    cb_state *s = user;
    s->calls++;
    return !p->is_eval && p->step >= s->stop_at;
}

static int stop_after(int id, const char *piece, size_t len, void *user) {
    (void)id, (void)piece, (void)len;
    cb_state *s = user;
    return ++s->calls >= s->stop_at;
}

static void callbacks(void) {
    lorac_llm *llm = open_tiny();
    if (!llm) return;
    lorac_train_config c;
    lorac_train_config_init(&c);
    c.data.data = sms;
    c.r = 4;
    c.lr = 2e-3f;
    c.batch = 4;
    c.epochs = 3;
    cb_state s = {0, 3};
    c.progress = cancel_at;
    c.user = &s;
    lorac_train_report r;
    CHECK_ERR(lorac_llm_train(llm, &c, &r), LORAC_ERR_CANCELLED, "after step 3");
    CHECK(s.calls >= 3, "the callback ran (%d calls)", s.calls);
    /* what was trained so far stays: it saves and classifies */
    char dir[1200];
    snprintf(dir, sizeof dir, "%s/cancelled", test_tmpdir());
    CHECK_OK(lorac_llm_adapter_save(llm, dir));
    float p[2];
    int label = -1;
    CHECK_OK(lorac_llm_classify(llm, "win a prize now", p, 2, &label));
    CHECK(label >= 0 && label < 2 && p[0] + p[1] > 0.999f && p[0] + p[1] < 1.001f, "label %d, probs %g %g", label,
          (double)p[0], (double)p[1]);
    CHECK_ERR(lorac_llm_classify(llm, "win", p, 1, NULL), LORAC_ERR_ARG, "2 classes");
    /* evaluate every row of the data with what was trained */
    lorac_data_config d = {.data = sms, .whole = 1};
    lorac_train_report ev;
    CHECK_OK(lorac_llm_evaluate(llm, &d, 0, 123, &ev));
    CHECK(ev.test.n == 80 && ev.train.n == 0 && ev.test.acc >= 0 && ev.test.acc <= 1 && ev.test.loss > 0,
          "evaluate: %d examples, acc %g, loss %g", ev.test.n, ev.test.acc, ev.test.loss);
    d.task = "sideways";
    CHECK_ERR(lorac_llm_evaluate(llm, &d, 0, 123, &ev), LORAC_ERR_ARG, "sideways");
    /* a chat in the default format (the fixture has no template: alpaca) */
    char *text = NULL;
    lorac_chat_info ci;
    const lorac_chat_message msg = {"user", "see you at five"};
    CHECK_OK(lorac_llm_chat(llm, NULL, &msg, 1, 1, &text, &ci));
    CHECK(text && strstr(text, "see you at five") && !strcmp(ci.family, "alpaca") && !ci.from_template,
          "chat: '%s' in %s", text ? text : "(null)", ci.family);
    lorac_free(text);
    CHECK_ERR(lorac_llm_chat(llm, "klingon", &msg, 1, 1, &text, NULL), LORAC_ERR_ARG, "klingon");
    CHECK_ERR(lorac_llm_train(llm, &c, NULL), LORAC_ERR_ARG, "already holds");
    CHECK_ERR(lorac_llm_adapter_use(llm, "x"), LORAC_ERR_ARG, "cannot be switched");
    lorac_llm_close(llm);

    /* generation: the callback stops after 2 tokens, greedy, no stop token */
    llm = open_tiny();
    if (!llm) return;
    lorac_gen_params g;
    lorac_gen_params_init(&g);
    g.max_new = 10;
    g.no_eos_stop = 1;
    cb_state gs = {0, 2};
    int *ids = NULL, n = -1;
    lorac_gen_stats st;
    CHECK_OK(lorac_llm_generate_ids(llm, (const int[]){12, 13}, 2, &g, stop_after, &gs, &ids, &n, &st));
    CHECK(n == 2 && gs.calls == 2 && st.stopped == 2 && st.gen_tokens == 2 && st.prompt_tokens == 2,
          "stopped after %d tokens (calls %d, stopped %d)", n, gs.calls, st.stopped);
    lorac_free(ids);
    /* the same without the callback runs to max_new */
    CHECK_OK(lorac_llm_generate_ids(llm, (const int[]){12, 13}, 2, &g, NULL, NULL, &ids, &n, &st));
    CHECK(n == 10 && st.stopped == 0, "max_new: %d tokens, stopped %d", n, st.stopped);
    lorac_free(ids);
    lorac_llm_close(llm);
}

/* The named-adapter calls work as documented: load, combine, switch, unload,
 * merge (greedy ids after merging = with the adapter unmerged). */
static void named_adapters(void) {
    char ad[1024];
    snprintf(ad, sizeof ad, "%s", test_src_path("tests/fixtures/parity/tiny_gpt2_peft_adapter"));
    lorac_llm *llm = open_tiny();
    if (!llm) return;
    lorac_gen_params g;
    lorac_gen_params_init(&g);
    g.max_new = 6;
    g.no_eos_stop = 1;
    const int prompt[3] = {12, 13, 14};
    int *base = NULL, *with = NULL, *merged = NULL, nb = 0, nw = 0, nm = 0;
    CHECK_OK(lorac_llm_generate_ids(llm, prompt, 3, &g, NULL, NULL, &base, &nb, NULL));
    CHECK_OK(lorac_llm_adapter_load(llm, "a", ad));
    CHECK_OK(lorac_llm_adapter_load(llm, "b", ad));
    CHECK_ERR(lorac_llm_adapter_load(llm, "a", ad), LORAC_ERR_ARG, "twice");
    const char *names[2] = {"a", "b"};
    const float w[2] = {0.5f, 0.5f};
    CHECK_OK(lorac_llm_adapter_combine(llm, "ab", names, w, 2, "linear"));
    CHECK_OK(lorac_llm_adapter_use(llm, "ab"));
    CHECK_OK(lorac_llm_adapter_unload(llm, "b"));
    lorac_llm_info info = {.size = sizeof info};
    CHECK_OK(lorac_llm_get_info(llm, &info));
    CHECK(info.n_adapters == 2 && !strcmp(info.active_adapter, "ab"), "after unload: %d adapters, active '%s'",
          info.n_adapters, info.active_adapter);
    CHECK_OK(lorac_llm_adapter_use(llm, "a"));
    CHECK_OK(lorac_llm_generate_ids(llm, prompt, 3, &g, NULL, NULL, &with, &nw, NULL));
    CHECK_ERR(lorac_llm_adapter_save(llm, test_tmpdir()), LORAC_ERR_ARG, "named adapters");
    CHECK_OK(lorac_llm_merge(llm));
    CHECK_OK(lorac_llm_get_info(llm, &info));
    CHECK(info.n_adapters == 0, "merge unloads the adapters (%d left)", info.n_adapters);
    CHECK_OK(lorac_llm_generate_ids(llm, prompt, 3, &g, NULL, NULL, &merged, &nm, NULL));
    CHECK(nw == 6 && nm == 6 && !memcmp(with, merged, sizeof(int) * 6), "greedy ids merged = unmerged");
    int same = nb == nw && !memcmp(base, with, sizeof(int) * (size_t)nb);
    printf("test_api: base %s the adapter's greedy ids\n", same ? "gives" : "differs from");
    lorac_free(base);
    lorac_free(with);
    lorac_free(merged);
    lorac_llm_close(llm);
}

/* LORAC_BASE_AUTO, lorac_llm_opts_init's default: an HF directory opens in
 * fp32; the SmolLM2 GGUF (when fetched) with its own blocks, as
 * LORAC_BASE_GGUF; LORAC_BASE_FP32 still dequantizes it. */
static void auto_base(void) {
    lorac_llm_opts o;
    lorac_llm_opts_init(&o);
    CHECK(o.base == LORAC_BASE_AUTO, "lorac_llm_opts_init: base %d", (int)o.base);
    o.no_tokenizer = 1;
    lorac_llm *llm = NULL;
    lorac_llm_info q = {.size = sizeof q};
    CHECK_OK(lorac_llm_open(tiny, &o, &llm));
    if (llm) CHECK_OK(lorac_llm_get_info(llm, &q));
    CHECK(llm && q.base == LORAC_BASE_FP32 && q.quantized_linears == 0, "auto over a directory: base %d, %d quantized",
          (int)q.base, q.quantized_linears);
    lorac_llm_close(llm);
    const char *gguf = test_cache_path("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    FILE *f = fopen(gguf, "rb"); /* (this test keeps to the public API) */
    if (f) fclose(f);
    if (!f) {
        printf("auto base: SmolLM2 GGUF skipped (%s not found)\n", gguf);
        return;
    }
    for (int fp32 = 0; fp32 < 2; fp32++) {
        o.base = fp32 ? LORAC_BASE_FP32 : LORAC_BASE_AUTO;
        llm = NULL;
        CHECK_OK(lorac_llm_open(gguf, &o, &llm));
        if (!llm) continue;
        q.size = sizeof q;
        CHECK_OK(lorac_llm_get_info(llm, &q));
        if (fp32)
            CHECK(q.base == LORAC_BASE_FP32 && q.quantized_linears == 0 && !strcmp(q.head_format, "fp32"),
                  "LORAC_BASE_FP32 over a .gguf: base %d, %d quantized, head %s", (int)q.base, q.quantized_linears,
                  q.head_format);
        else
            CHECK(q.base == LORAC_BASE_GGUF && q.quantized_linears == 210 && !strcmp(q.formats, "Q4_1") &&
                      !strcmp(q.embed_format, "Q8_0") && !strcmp(q.head_format, "Q8_0"),
                  "auto over a .gguf: base %d, %d Linears in %s, embedding %s, head %s", (int)q.base, q.quantized_linears,
                  q.formats, q.embed_format, q.head_format);
        if (!fp32) CHECK_ERR(lorac_llm_merge(llm), LORAC_ERR_UNSUPPORTED, "LORAC_BASE_FP32");
        lorac_llm_close(llm);
    }
}

int main(void) {
    fixtures();
    null_handles();
    wrong_sizes_and_paths();
    wrong_order_and_other_base();
    callbacks();
    named_adapters();
    auto_base();
    return test_summary("test_api");
}
