/* test_api_train.c - the public API's training stages (lorac.h "training
 * in stages"): lorac_data_load / _get_info / _label, lorac_llm_prepare,
 * lorac_llm_fit (checkpoints, resume, the stop flag, model_dropout),
 * lorac_llm_score, the data-parallel ranks of one process (lorac_ranks_*)
 * and the checkpoint calls. Misuse (NULL handles, bad values, calls out of
 * order) is answered with status codes and one-line messages. A resumed
 * run must end exactly where an uninterrupted one does; model_dropout must
 * reach the model (an encoder with dropout rates in its config.json trains
 * differently with it on and off, and with it off exactly as with rates 0).
 * Runs on the tiny GPT-2 and BERT fixtures with a WordPiece vocabulary
 * written here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lorac.h"
#include "testutil.h"

static char tiny[1024], bert[1024], bert_drop[1024], vocab[1024], sms[1024], sms3[1024];

static void fixtures(void) {
    snprintf(tiny, sizeof tiny, "%s", test_src_path("tests/fixtures/models/tiny_gpt2"));
    snprintf(bert, sizeof bert, "%s", test_src_path("tests/fixtures/models/tiny_bert"));
    const char *dir = test_tmpdir();
    test_write_sms_fixture(dir, vocab, sms, sizeof vocab);
    /* three classes, as tiny_bert's saved classifier has */
    snprintf(sms3, sizeof sms3, "%s/sms3.tsv", dir);
    FILE *f = fopen(sms3, "w");
    for (int i = 0; i < 20; i++)
        fprintf(f, "ham\tsee you at five\nspam\twin a prize now\nok\tok call me later\nspam\tclaim free cash now\n");
    fclose(f);
    /* tiny_bert with dropout rates in its config (the fixture's are 0): same weights */
    snprintf(bert_drop, sizeof bert_drop, "%s/bert_drop", dir);
    char src[1200], dst[1200], line[512];
    snprintf(dst, sizeof dst, "mkdir -p '%s'", bert_drop);
    CHECK(system(dst) == 0, "mkdir %s", bert_drop);
    snprintf(src, sizeof src, "%s/config.json", bert);
    snprintf(dst, sizeof dst, "%s/config.json", bert_drop);
    FILE *in = fopen(src, "r"), *out = fopen(dst, "w");
    CHECK(in && out, "copy %s", src);
    if (!in || !out) return;
    while (fgets(line, sizeof line, in)) {
        if (strstr(line, "\"hidden_dropout_prob\"")) fputs("  \"hidden_dropout_prob\": 0.3,\n", out);
        else if (strstr(line, "\"attention_probs_dropout_prob\"")) fputs("  \"attention_probs_dropout_prob\": 0.3,\n", out);
        else fputs(line, out);
    }
    fclose(in);
    fclose(out);
    snprintf(src, sizeof src, "%s/model.safetensors", bert);
    snprintf(dst, sizeof dst, "%s/model.safetensors", bert_drop);
    unlink(dst);
    CHECK(symlink(src, dst) == 0, "symlink %s", dst);
}

static lorac_llm *open_model(const char *path) {
    lorac_llm_opts o;
    lorac_llm_opts_init(&o);
    o.tokenizer = vocab;
    lorac_llm *llm = NULL;
    CHECK_OK(lorac_llm_open(path, &o, &llm));
    return llm;
}

static void base_config(lorac_train_config *c) {
    lorac_train_config_init(c);
    c->data.data = sms;
    c->r = 4;
    c->lr = 2e-3f;
    c->batch = 4;
    c->epochs = 1;
}

static void misuse(void) {
    lorac_data *d = (lorac_data *)1;
    lorac_train_config c;
    base_config(&c);
    CHECK_ERR(lorac_data_load(NULL, &c.data, 1, &d), LORAC_ERR_ARG, "llm");
    CHECK(d == NULL, "a failed load leaves *out NULL");
    CHECK_ERR(lorac_data_load(NULL, &c.data, 1, NULL), LORAC_ERR_ARG, "out");
    lorac_data_free(NULL);
    lorac_data_info info = {.size = sizeof info};
    CHECK_ERR(lorac_data_get_info(NULL, &info), LORAC_ERR_ARG, "data");
    CHECK(lorac_data_label(NULL, 0, NULL) == NULL, "label of a NULL data set");
    CHECK_ERR(lorac_llm_prepare(NULL, &c, NULL, NULL), LORAC_ERR_ARG, "llm");
    CHECK_ERR(lorac_llm_fit(NULL, &c, NULL, NULL), LORAC_ERR_ARG, "llm");
    lorac_split_scores sc;
    CHECK_ERR(lorac_llm_score(NULL, NULL, 0, 8, NULL, &sc), LORAC_ERR_ARG, "llm");

    /* the config alone, before anything slow */
    CHECK_ERR(lorac_train_config_check(NULL), LORAC_ERR_ARG, "c");
    CHECK_OK(lorac_train_config_check(&c));
    lorac_train_config k = c;
    k.alpha_pattern = "c_attn=";
    CHECK_ERR(lorac_train_config_check(&k), LORAC_ERR_ARG, "alpha_pattern");
    k = c;
    k.layers = "0,x";
    CHECK_ERR(lorac_train_config_check(&k), LORAC_ERR_ARG, "0,x");
    k = c;
    k.method = "last-layers:0";
    CHECK_ERR(lorac_train_config_check(&k), LORAC_ERR_ARG, "last-layers:0");

    lorac_llm *llm = open_model(tiny);
    if (!llm) return;
    lorac_data_config bad = c.data;
    bad.task = "sideways";
    CHECK_ERR(lorac_data_load(llm, &bad, 1, &d), LORAC_ERR_ARG, "sideways");
    CHECK_OK(lorac_data_load(llm, &c.data, c.seed, &d));
    info.size = 3;
    CHECK_ERR(lorac_data_get_info(d, &info), LORAC_ERR_ARG, "size");
    CHECK_ERR(lorac_llm_prepare(llm, &c, NULL, NULL), LORAC_ERR_ARG, "data");
    /* fit before prepare: refused, nothing trained */
    CHECK_ERR(lorac_llm_fit(llm, &c, d, NULL), LORAC_ERR_ARG, "lorac_llm_prepare");
    CHECK_ERR(lorac_llm_score(llm, d, 3, 8, NULL, &sc), LORAC_ERR_ARG, "split 3");
    CHECK_ERR(lorac_llm_score(llm, d, 2, 8, NULL, &sc), LORAC_ERR_ARG, "head");
    lorac_train_config b = c;
    b.model_dropout = 2;
    CHECK_ERR(lorac_llm_prepare(llm, &b, d, NULL), LORAC_ERR_ARG, "model_dropout 2");
    b = c;
    b.method = "sideways";
    CHECK_ERR(lorac_llm_prepare(llm, &b, d, NULL), LORAC_ERR_ARG, "sideways");
    b = c;
    b.rank_pattern = "c_attn";
    CHECK_ERR(lorac_llm_prepare(llm, &b, d, NULL), LORAC_ERR_ARG, "rank_pattern");
    b = c;
    b.init = "sideways";
    CHECK_ERR(lorac_llm_prepare(llm, &b, d, NULL), LORAC_ERR_ARG, "sideways");
    b = c;
    b.keep_checkpoints = -1;
    CHECK_ERR(lorac_llm_prepare(llm, &b, d, NULL), LORAC_ERR_ARG, "keep_checkpoints");
    b = c;
    b.size = 8;
    CHECK_ERR(lorac_llm_prepare(llm, &b, d, NULL), LORAC_ERR_ARG, "size");
    /* none of those left an adapter: a good config still prepares */
    CHECK_OK(lorac_llm_prepare(llm, &c, d, NULL));
    CHECK_ERR(lorac_llm_prepare(llm, &c, d, NULL), LORAC_ERR_ARG, "already holds");
    b = c;
    b.save_every = 2; /* without checkpoint_dir */
    CHECK_ERR(lorac_llm_fit(llm, &b, d, NULL), LORAC_ERR_ARG, "checkpoint_dir");
    lorac_fit_report r = {.size = 7};
    CHECK_ERR(lorac_llm_fit(llm, &c, d, &r), LORAC_ERR_ARG, "size");
    const char *odd[] = {"qformat", NULL};
    b = c;
    b.run_config = odd;
    CHECK_ERR(lorac_llm_fit(llm, &b, d, NULL), LORAC_ERR_ARG, "qformat");
    lorac_data_free(d);
    lorac_llm_close(llm);

    /* ranks: one process is the NULL handle */
    lorac_ranks *rk = (lorac_ranks *)1;
    CHECK_ERR(lorac_ranks_start(0, &rk), LORAC_ERR_ARG, "timeout");
    CHECK_ERR(lorac_ranks_start(10, NULL), LORAC_ERR_ARG, "out");
    CHECK_OK(lorac_ranks_start(10, &rk));
    CHECK(rk == NULL, "started by hand: the one-process NULL handle");
    CHECK(lorac_ranks_rank(rk) == 0 && lorac_ranks_size(rk) == 1 && !strcmp(lorac_ranks_host(rk), ""), "one process");
    CHECK(lorac_ranks_launched_size() == 1 && lorac_ranks_launched_rank() == 0, "not launched by mpirun");
    CHECK_OK(lorac_ranks_barrier(rk, "nothing"));
    char where[256];
    CHECK_OK(lorac_ranks_describe(rk, where, sizeof where));
    CHECK(!strncmp(where, "1 host: ", 8), "describe: '%s'", where);
    CHECK_ERR(lorac_ranks_describe(rk, NULL, 8), LORAC_ERR_ARG, "buf");
    lorac_ranks_stats st = {1, 1, 1, 1};
    CHECK_OK(lorac_ranks_get_stats(rk, &st));
    CHECK(st.collectives == 0 && st.bytes == 0 && st.seconds == 0, "no communication in one process");
    CHECK_ERR(lorac_ranks_get_stats(rk, NULL), LORAC_ERR_ARG, "s");
    lorac_ranks_abort(NULL, 3); /* returns for NULL */
    lorac_ranks_stop(NULL);

    /* checkpoints */
    char ck[1200], run[1200], missing[1200];
    snprintf(missing, sizeof missing, "%s/no-such-run", test_tmpdir());
    CHECK(lorac_checkpoint_find(missing, ck, sizeof ck, run, sizeof run) != LORAC_OK &&
              strstr(lorac_last_error(), "no-such-run"), "find in a missing directory: %s", lorac_last_error());
    CHECK_ERR(lorac_checkpoint_find(NULL, ck, sizeof ck, NULL, 0), LORAC_ERR_ARG, "path");
    CHECK_ERR(lorac_checkpoint_find(missing, ck, 0, NULL, 0), LORAC_ERR_ARG, "0 bytes");
    CHECK(lorac_checkpoint_exists(missing) == 0 && lorac_checkpoint_exists(NULL) == 0, "exists on nothing");
    CHECK_ERR(lorac_checkpoint_clear(NULL), LORAC_ERR_ARG, "dir");
}

/* Train tiny GPT-2 for max_steps steps in stages; the final loss. Writes
 * checkpoints under ckdir (may be NULL), resuming from `resume`. */
static double staged(int max_steps, int save_every, const char *ckdir, const char *resume, volatile sig_atomic_t *stop,
                     lorac_status want, lorac_fit_report *rep) {
    memset(rep, 0, sizeof *rep);
    lorac_llm *llm = open_model(tiny);
    if (!llm) return -1;
    lorac_train_config c;
    base_config(&c);
    c.epochs = 3;
    c.max_steps = max_steps;
    c.save_every = save_every;
    c.checkpoint_dir = ckdir;
    c.resume_from = resume;
    c.stop = stop;
    lorac_data *d = NULL;
    CHECK_OK(lorac_data_load(llm, &c.data, c.seed, &d));
    lorac_data_info info = {.size = sizeof info};
    CHECK_OK(lorac_data_get_info(d, &info));
    CHECK(!strcmp(info.task, "classify") && info.n[0] == 56 && info.n[1] == 8 && info.n[2] == 16 && info.n_labels == 2,
          "task %s, n %d %d %d, labels %d", info.task, info.n[0], info.n[1], info.n[2], info.n_labels);
    int ham = 0, spam = 0;
    const char *l0 = lorac_data_label(d, 0, &ham), *l1 = lorac_data_label(d, 1, &spam);
    CHECK(l0 && l1 && !strcmp(l0, "ham") && !strcmp(l1, "spam") && ham + spam == info.n[0] && ham > 0 && spam > 0,
          "labels %s (%d) %s (%d)", l0 ? l0 : "-", ham, l1 ? l1 : "-", spam);
    CHECK(lorac_data_label(d, 2, NULL) == NULL && lorac_data_label(d, -1, NULL) == NULL, "labels out of range");
    int in_full = -1;
    CHECK_OK(lorac_llm_prepare(llm, &c, d, &in_full));
    CHECK(in_full == 1, "LoRA on a classifier trains the new head in full (SEQ_CLS)");
    lorac_llm_info mi = {.size = sizeof mi};
    CHECK_OK(lorac_llm_get_info(llm, &mi));
    CHECK(mi.params_trainable > 0 && mi.params_trainable < mi.params_all && mi.n_classes == 2, "trainable %lld of %lld",
          (long long)mi.params_trainable, (long long)mi.params_all);
    rep->size = sizeof *rep;
    lorac_status st = lorac_llm_fit(llm, &c, d, rep);
    CHECK(st == want, "fit -> %d (%s), want %d", (int)st, lorac_last_error(), (int)want);
    lorac_split_scores sc;
    CHECK_OK(lorac_llm_score(llm, d, 2, 0, NULL, &sc));
    CHECK(sc.n == 16 && sc.acc >= 0 && sc.acc <= 1 && sc.loss > 0, "test split: n %d acc %g loss %g", sc.n, sc.acc, sc.loss);
    lorac_data_free(d);
    lorac_llm_close(llm);
    return rep->final_loss;
}

static void stages_and_resume(void) {
    char ckdir[1200], ck[1200], run[1200], probe[1400];
    snprintf(ckdir, sizeof ckdir, "%s/run/checkpoints", test_tmpdir());
    lorac_fit_report whole, first, rest, stopped;
    const double l_whole = staged(8, 0, NULL, NULL, NULL, LORAC_OK, &whole);
    CHECK(whole.steps == 8 && whole.checkpoint[0] == 0 && whole.tokens > 0, "8 steps, no checkpoint: %d '%s'",
          whole.steps, whole.checkpoint);
    staged(4, 2, ckdir, NULL, NULL, LORAC_OK, &first);
    CHECK(first.steps == 4 && strstr(first.checkpoint, "step-000004"), "checkpoint after 4 steps: '%s'", first.checkpoint);
    CHECK(lorac_checkpoint_exists(ckdir) == 1, "a checkpoint exists in %s", ckdir);
    snprintf(probe, sizeof probe, "%s/run", test_tmpdir());
    CHECK_OK(lorac_checkpoint_find(probe, ck, sizeof ck, run, sizeof run));
    CHECK(strstr(ck, "step-000004") && !strcmp(run, probe), "find: '%s' in run '%s'", ck, run);
    snprintf(probe, sizeof probe, "%s/adapter_config.json", ck);
    CHECK(access(probe, F_OK) == 0, "a LoRA checkpoint holds the adapter too: %s", probe);
    /* resumed to 8 steps: the uninterrupted run's loss, bit for bit */
    const double l_rest = staged(8, 0, ckdir, ck, NULL, LORAC_OK, &rest);
    CHECK(rest.resumed_step == 4 && rest.steps == 8, "resumed at %d, %d steps", rest.resumed_step, rest.steps);
    CHECK(l_rest == l_whole, "resumed run's final loss %.9g, uninterrupted %.9g", l_rest, l_whole);
    /* the stop flag: stops at the first step boundary with a checkpoint */
    volatile sig_atomic_t flag = 1;
    staged(8, 0, ckdir, NULL, &flag, LORAC_ERR_CANCELLED, &stopped);
    CHECK(stopped.stopped == 1 && stopped.steps == 1 && strstr(stopped.checkpoint, "step-000001"),
          "stopped: %d after %d steps, checkpoint '%s'", stopped.stopped, stopped.steps, stopped.checkpoint);
    /* a resume with other LoRA settings is refused, naming the setting */
    lorac_llm *llm = open_model(tiny);
    if (!llm) return;
    lorac_train_config c;
    base_config(&c);
    c.r = 8;
    c.checkpoint_dir = ckdir;
    c.resume_from = ck;
    lorac_data *d = NULL;
    CHECK_OK(lorac_data_load(llm, &c.data, c.seed, &d));
    CHECK_OK(lorac_llm_prepare(llm, &c, d, NULL));
    CHECK_ERR(lorac_llm_fit(llm, &c, d, NULL), LORAC_ERR_ARG, "differs");
    lorac_data_free(d);
    lorac_llm_close(llm);
    CHECK_OK(lorac_checkpoint_clear(ckdir));
    CHECK(lorac_checkpoint_exists(ckdir) == 0, "cleared");
}

/* final loss of 3 steps on an encoder */
static double bert_loss(const char *path, int model_dropout) {
    lorac_llm *llm = open_model(path);
    if (!llm) return -1;
    lorac_train_config c;
    base_config(&c);
    c.data.data = sms3;
    c.max_steps = 3;
    c.model_dropout = model_dropout;
    lorac_train_report r;
    CHECK_OK(lorac_llm_train(llm, &c, &r));
    lorac_llm_close(llm);
    return r.final_loss;
}

static void model_dropout(void) {
    lorac_train_config c;
    lorac_train_config_init(&c);
    CHECK(c.model_dropout == 1 && c.keep_checkpoints == 2 && c.loraplus_lr_embedding > 0, "defaults");
    const double on = bert_loss(bert_drop, 1), off = bert_loss(bert_drop, 0), zero = bert_loss(bert, 1);
    CHECK(on != off, "model_dropout 1 and 0 train alike (%.9g) over config dropout 0.3", on);
    CHECK(off == zero, "model_dropout 0 (%.9g) is not the config with rates 0 (%.9g)", off, zero);
}

int main(void) {
    fixtures();
    misuse();
    stages_and_resume();
    model_dropout();
    return test_summary("test_api_train");
}
