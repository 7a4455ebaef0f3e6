/* test_dataset.c - dataset loading (TSV, CSV, JSONL, JSON, .gz, plain text,
 * instructions), label mapping, appendix E's balance / split on the real SMS
 * spam file, and one clear error for each kind of bad input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/status.h"
#include "io/dataset.h"
#include "testutil.h"

/* ---- helpers ---- */

/* Write `len` bytes to <tmpdir>/<name> and return the path (static buffer, 4 in rotation). */
static const char *tmp_file(const char *name, const char *data, size_t len) {
    static char paths[4][512];
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(data, 1, len, f) != len) {
        perror(p);
        exit(2);
    }
    fclose(f);
    return p;
}
#define TMP(name, literal) tmp_file(name, literal, sizeof(literal) - 1)

static long total_text_bytes(const lorac_dataset *d) {
    long n = 0;
    for (int i = 0; i < d->n; i++) n += (long)strlen(d->ex[i].text);
    return n;
}

/* Is the example sequence (by source line) the same? */
static int same_lines(const lorac_dataset *a, const lorac_dataset *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++)
        if (a->ex[i].line != b->ex[i].line) return 0;
    return 1;
}

/* Expect a failure with status `want` whose message contains every given fragment. */
static void expect_error(const char *what, lorac_status got, lorac_status want, const lorac_dataset *d,
                         const char *frag1, const char *frag2) {
    const char *msg = lorac_last_error();
    if (getenv("TEST_VERBOSE")) printf("  %-28s %s\n", what, msg);
    CHECK(got == want, "%s: status %s, want %s (%s)", what, lorac_status_name(got), lorac_status_name(want), msg);
    CHECK(strstr(msg, frag1) != NULL, "%s: message '%s' lacks '%s'", what, msg, frag1);
    if (frag2) CHECK(strstr(msg, frag2) != NULL, "%s: message '%s' lacks '%s'", what, msg, frag2);
    CHECK(strchr(msg, '\n') == NULL, "%s: message is more than one line", what);
    CHECK(d->n == 0 && d->ex == NULL && d->label_names == NULL, "%s: failed load left data behind", what);
}

static int g_warnings;
static void count_log(int level, const char *msg, void *user) {
    if (level >= 1) g_warnings++;
}

/* ---- the real SMS spam file and appendix E ---- */

static void test_sms(void) {
    lorac_dataset d, d2, tr, va, te, tr2, va2, te2, tr3, va3, te3;
    CHECK_OK(lorac_dataset_load(test_data_path("sms_spam/SMSSpamCollection"), NULL, &d));
    CHECK(d.n == 5574, "n = %d", d.n);
    CHECK(d.n_labels == 2 && !strcmp(d.label_names[0], "ham") && !strcmp(d.label_names[1], "spam"),
          "labels %d", d.n_labels);
    CHECK(lorac_dataset_count(&d, 0) == 4827 && lorac_dataset_count(&d, 1) == 747, "ham %d spam %d",
          lorac_dataset_count(&d, 0), lorac_dataset_count(&d, 1));
    CHECK(d.ex[0].line == 1 && d.ex[0].label == 0 && !strncmp(d.ex[0].text, "Go until jurong point, crazy..", 30),
          "first row '%.40s'", d.ex[0].text);
    CHECK(d.ex[2].label == 1 && d.ex[5573].line == 5574, "row 3 label %d", d.ex[2].label);
    CHECK(total_text_bytes(&d) == 449290, "text bytes %ld (python: 449290)", total_text_bytes(&d));
    CHECK(d.ex[0].prompt == NULL && d.ex[0].response == NULL && d.n_skipped == 0, "classification extras");

    /* balance: 747 + 747, deterministic per seed */
    CHECK_OK(lorac_dataset_load(test_data_path("sms_spam/SMSSpamCollection"), NULL, &d2));
    CHECK_OK(lorac_dataset_balance(&d, 123));
    CHECK_OK(lorac_dataset_balance(&d2, 123));
    CHECK(d.n == 1494 && lorac_dataset_count(&d, 0) == 747 && lorac_dataset_count(&d, 1) == 747, "balanced %d",
          d.n);
    CHECK(same_lines(&d, &d2), "balance is not deterministic for one seed");
    int sorted = 1;
    for (int i = 1; i < d.n; i++) sorted &= d.ex[i].line > d.ex[i - 1].line;
    CHECK(sorted, "balanced examples not in file order");
    lorac_dataset_free(&d2);
    CHECK_OK(lorac_dataset_load(test_data_path("sms_spam/SMSSpamCollection"), NULL, &d2));
    CHECK_OK(lorac_dataset_balance(&d2, 7));
    CHECK(d2.n == 1494 && !same_lines(&d, &d2), "another seed keeps another subset of ham");
    lorac_dataset_free(&d2);

    /* split 70 / 10 / rest: 1045 / 149 / 300 as in appendix E */
    CHECK_OK(lorac_dataset_split(&d, 0.7, 0.1, 123, 1, &tr, &va, &te));
    CHECK(tr.n == 1045 && va.n == 149 && te.n == 300, "split %d/%d/%d", tr.n, va.n, te.n);
    CHECK(tr.n_labels == 2 && !strcmp(te.label_names[1], "spam") && tr.label_names != d.label_names,
          "split label names are own copies");
    /* the parts are a partition of the balanced set */
    char *seen = calloc(5575, 1);
    int dup = 0, total = 0;
    const lorac_dataset *parts[3] = {&tr, &va, &te};
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < parts[p]->n; i++, total++) dup += seen[parts[p]->ex[i].line]++ != 0;
    int missing = 0;
    for (int i = 0; i < d.n; i++) missing += !seen[d.ex[i].line];
    CHECK(total == 1494 && dup == 0 && missing == 0, "partition: total %d dup %d missing %d", total, dup, missing);
    free(seen);
    CHECK_OK(lorac_dataset_split(&d, 0.7, 0.1, 123, 1, &tr2, &va2, &te2));
    CHECK(same_lines(&tr, &tr2) && same_lines(&va, &va2) && same_lines(&te, &te2), "split not deterministic");
    CHECK_OK(lorac_dataset_split(&d, 0.7, 0.1, 124, 1, &tr3, &va3, &te3));
    CHECK(!same_lines(&tr, &tr3), "another seed gives the same order");
    lorac_dataset_free(&tr2), lorac_dataset_free(&va2), lorac_dataset_free(&te2);
    lorac_dataset_free(&tr3), lorac_dataset_free(&va3), lorac_dataset_free(&te3);

    /* shuffle then unshuffled split == shuffled split with the same seed */
    CHECK_OK(lorac_dataset_subset(&d, -1, &d2));
    lorac_dataset_shuffle(&d2, 123);
    CHECK_OK(lorac_dataset_split(&d2, 0.7, 0.1, 0, 0, &tr2, &va2, &te2));
    CHECK(same_lines(&tr, &tr2) && same_lines(&te, &te2), "shuffle + split differs from shuffled split");
    lorac_dataset_free(&tr2), lorac_dataset_free(&va2), lorac_dataset_free(&te2);
    lorac_dataset_free(&d2);

    /* subset: the first max_n, copied */
    CHECK_OK(lorac_dataset_subset(&tr, 100, &d2));
    CHECK(d2.n == 100 && d2.ex[99].line == tr.ex[99].line && d2.ex[0].text != tr.ex[0].text &&
              !strcmp(d2.ex[0].text, tr.ex[0].text),
          "subset");
    lorac_dataset_free(&d2);
    lorac_dataset_free(&tr), lorac_dataset_free(&va), lorac_dataset_free(&te);
    lorac_dataset_free(&d);
    lorac_dataset_free(&d); /* twice is harmless */
    lorac_dataset_free(NULL);
}

static void test_split_rounding(void) {
    /* train_end = int(n * 0.7), val_end = train_end + int(n * 0.1), as Python's int() */
    static const int ns[] = {1, 2, 9, 10, 11, 1494};
    char buf[64 * 1500];
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int n = ns[k];
        size_t len = 0;
        for (int i = 0; i < n; i++) len += (size_t)sprintf(buf + len, "%s\trow %d\n", i % 2 ? "a" : "b", i);
        lorac_dataset d, tr, va, te;
        CHECK_OK(lorac_dataset_load(tmp_file("rows.tsv", buf, len), NULL, &d));
        CHECK_OK(lorac_dataset_split(&d, 0.7, 0.1, 1, 1, &tr, &va, &te));
        int want_tr = (int)(n * 0.7), want_va = (int)(n * 0.1);
        CHECK(tr.n == want_tr && va.n == want_va && te.n == n - want_tr - want_va, "n=%d: %d/%d/%d", n, tr.n, va.n,
              te.n);
        lorac_dataset_free(&tr), lorac_dataset_free(&va), lorac_dataset_free(&te);
        CHECK_OK(lorac_dataset_split(&d, 0.5, 0, 1, 0, &tr, NULL, NULL)); /* parts may be left out */
        CHECK(tr.n == n / 2 && (n < 2 || tr.ex[0].line == 1), "n=%d: half %d", n, tr.n);
        lorac_dataset_free(&tr);
        CHECK(lorac_dataset_split(&d, 0.8, 0.3, 1, 0, &tr, &va, &te) == LORAC_ERR_ARG, "fractions over 1");
        lorac_dataset_free(&d);
    }
}

/* ---- IMDb: gzipped TSV with a header ---- */

static void test_imdb(void) {
    lorac_dataset d;
    CHECK_OK(lorac_dataset_load(test_data_path("imdb/imdb_train.tsv.gz"), NULL, &d));
    CHECK(d.n == 25000, "n = %d", d.n);
    CHECK(d.n_labels == 2 && !strcmp(d.label_names[0], "0") && !strcmp(d.label_names[1], "1"), "labels");
    CHECK(lorac_dataset_count(&d, 0) == 12500 && lorac_dataset_count(&d, 1) == 12500, "per class %d / %d",
          lorac_dataset_count(&d, 0), lorac_dataset_count(&d, 1));
    CHECK(d.ex[0].line == 2 && !strncmp(d.ex[0].text, "Story of a man who has unnatural feelings for a pig.", 52),
          "first review '%.60s'", d.ex[0].text);
    CHECK(total_text_bytes(&d) == 33132823, "text bytes %ld (python: 33132823)", total_text_bytes(&d));
    lorac_dataset_free(&d);
}

/* ---- small fixtures: CSV quoting, JSONL, options ---- */

static void test_csv_quoting(void) {
    lorac_dataset d;
    CHECK_OK(lorac_dataset_load(test_src_path("tests/fixtures/data/quoted.csv"), NULL, &d));
    CHECK(d.n == 4 && d.n_labels == 2, "n %d labels %d", d.n, d.n_labels);
    if (d.n == 4) {
        CHECK(!strcmp(d.ex[0].text, "Hello, world") && d.ex[0].label == 1 && d.ex[0].line == 2, "comma in quotes");
        CHECK(!strcmp(d.ex[1].text, "She said \"hi\"") && d.ex[1].label == 0, "doubled quotes '%s'", d.ex[1].text);
        CHECK(!strcmp(d.ex[2].text, "line one\r\nline two") && d.ex[2].line == 4, "newline in quotes");
        CHECK(!strcmp(d.ex[3].text, "a 5\" screen") && d.ex[3].label == 0 && d.ex[3].line == 7,
              "bare quote, trimmed label: '%s' line %d", d.ex[3].text, d.ex[3].line);
    }
    lorac_dataset_free(&d);

    /* the same file by column index, forced header */
    lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
    o.text_col = "1";
    o.label_col = "2";
    o.header = LORAC_HEADER_YES;
    const char *const order[] = {"pos", "neg", NULL};
    o.label_order = order;
    CHECK_OK(lorac_dataset_load(test_src_path("tests/fixtures/data/quoted.csv"), &o, &d));
    CHECK(d.n == 4 && d.ex[0].label == 0 && d.ex[1].label == 1 && !strcmp(d.label_names[0], "pos"),
          "index columns with label order");
    lorac_dataset_free(&d);

    /* a TSV with a header "Label<TAB>SMS"; a forced format */
    CHECK_OK(lorac_dataset_load(test_src_path("tests/fixtures/data/sms_header.tsv"), NULL, &d));
    CHECK(d.n == 3 && d.ex[1].label == 1 && !strcmp(d.ex[1].text, "WIN a prize now"), "Label/SMS header");
    lorac_dataset_free(&d);
    o = (lorac_data_opts)LORAC_DATA_OPTS_DEFAULT;
    o.format = "csv";
    CHECK_OK(lorac_dataset_load(TMP("noext", "label,text\n1,\"a, b\"\n0,c\n"), &o, &d));
    CHECK(d.n == 2 && !strcmp(d.ex[0].text, "a, b"), "--format csv");
    lorac_dataset_free(&d);
    CHECK_OK(lorac_dataset_load(TMP("sniff", "x,first\ny,second\n"), NULL, &d)); /* no extension: comma => CSV */
    CHECK(d.n == 2 && !strcmp(d.ex[1].text, "second") && !strcmp(d.label_names[1], "y"), "sniffed CSV");
    lorac_dataset_free(&d);
    /* a UTF-8 BOM is dropped; a forced "no header" keeps the first row */
    o = (lorac_data_opts)LORAC_DATA_OPTS_DEFAULT;
    o.header = LORAC_HEADER_NO;
    CHECK_OK(lorac_dataset_load(TMP("bom.tsv", "\xEF\xBB\xBFlabel\ttext\nb\tx\n"), &o, &d));
    CHECK(d.n == 2 && !strcmp(d.label_names[1], "label"), "BOM / header no");
    lorac_dataset_free(&d);
    /* numeric labels sort numerically */
    CHECK_OK(lorac_dataset_load(TMP("num.tsv", "10\ta\n2\tb\n-1\tc\n2\td\n"), NULL, &d));
    CHECK(d.n_labels == 3 && !strcmp(d.label_names[0], "-1") && !strcmp(d.label_names[1], "2") &&
              !strcmp(d.label_names[2], "10") && d.ex[0].label == 2,
          "numeric order");
    lorac_dataset_free(&d);
}

static void test_jsonl(void) {
    lorac_dataset d;
    CHECK_OK(lorac_dataset_load(test_src_path("tests/fixtures/data/reviews.jsonl"), NULL, &d));
    CHECK(d.n == 4 && d.n_labels == 4, "n %d labels %d", d.n, d.n_labels);
    if (d.n == 4 && d.n_labels == 4) {
        CHECK(!strcmp(d.label_names[3], "10") && d.ex[3].label == 3 && d.ex[3].line == 5, "numeric labels");
        CHECK(!strcmp(d.ex[2].text, "ok-ish") && d.ex[2].label == 2, "sentence key");
        CHECK(!strcmp(d.ex[3].text, "unicode: caf\xc3\xa9 \xe2\x98\x95"), "UTF-8 text");
    }
    lorac_dataset_free(&d);
    /* a JSON array, keys chosen by name, with a line per record */
    lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
    o.text_col = "body";
    o.label_col = "spam";
    CHECK_OK(lorac_dataset_load(
        TMP("a.json", "[\n {\"body\": \"hi\", \"spam\": false},\n\n {\"body\": \"WIN\", \"spam\": true}\n]\n"), &o, &d));
    CHECK(d.n == 2 && d.ex[1].label == 1 && d.ex[1].line == 4 && !strcmp(d.label_names[0], "false"),
          "json array, bool labels, line %d", d.n == 2 ? d.ex[1].line : 0);
    lorac_dataset_free(&d);
    CHECK_OK(lorac_dataset_load(TMP("lines.json", "{\"text\": \"a\", \"label\": \"x\"}\n"), NULL, &d));
    CHECK(d.n == 1, "a .json file holding JSONL");
    lorac_dataset_free(&d);
}

static void test_text_and_instructions(void) {
    lorac_dataset d;
    CHECK_OK(lorac_dataset_load_text(test_src_path("tests/fixtures/data/stories.txt"), &d));
    CHECK(d.n == 3, "documents %d", d.n);
    if (d.n == 3) {
        CHECK(!strcmp(d.ex[0].text, "Once upon a time there was a cat.\nThe cat liked milk.") && d.ex[0].line == 1,
              "doc 1 '%s'", d.ex[0].text);
        CHECK(!strcmp(d.ex[1].text, "Lily found a ball.\nShe was happy.") && d.ex[1].line == 5, "doc 2 (CRLF)");
        CHECK(!strcmp(d.ex[2].text, "The end.") && d.ex[2].label == -1 && d.n_labels == 0, "doc 3");
    }
    lorac_dataset_free(&d);
    CHECK_OK(lorac_dataset_load_text(test_src_path("tests/fixtures/data/reviews.jsonl"), &d));
    CHECK(d.n == 4 && d.n_labels == 0 && d.ex[0].label == -1, "text from jsonl");
    lorac_dataset_free(&d);

    /* the fixture: input present / absent */
    CHECK_OK(lorac_dataset_load_instructions(test_src_path("tests/fixtures/data/instructions.jsonl"), &d));
    CHECK(d.n == 2, "n %d", d.n);
    if (d.n == 2)
        CHECK(!strcmp(d.ex[1].prompt, "Below is an instruction that describes a task. Write a response that "
                                      "appropriately completes the request.\n\n### Instruction:\nName a primary "
                                      "color.\n\n### Response:\n") &&
                  !strcmp(d.ex[1].response, "Red."),
              "prompt without input:\n%s", d.ex[1].prompt);
    lorac_dataset_free(&d);

    /* the real ch07 file */
    CHECK_OK(lorac_dataset_load_instructions(test_data_path("instruction_data/instruction-data.json"), &d));
    CHECK(d.n == 1100, "n %d", d.n);
    int with_input = 0, concat_ok = 1;
    for (int i = 0; i < d.n; i++) {
        with_input += strstr(d.ex[i].prompt, "\n\n### Input:\n") != NULL;
        size_t np = strlen(d.ex[i].prompt);
        concat_ok &= !strncmp(d.ex[i].text, d.ex[i].prompt, np) && !strcmp(d.ex[i].text + np, d.ex[i].response);
    }
    CHECK(with_input == 325, "records with input %d", with_input);
    CHECK(concat_ok, "text != prompt + response");
    CHECK(total_text_bytes(&d) == 270912, "text bytes %ld (python format_input: 270912)", total_text_bytes(&d));
    if (d.n == 1100) {
        CHECK(!strcmp(d.ex[0].prompt,
                      "Below is an instruction that describes a task. Write a response that appropriately completes "
                      "the request.\n\n### Instruction:\nEvaluate the following phrase by transforming it into the "
                      "spelling given.\n\n### Input:\nfreind --> friend\n\n### Response:\n"),
              "record 0 prompt:\n%s", d.ex[0].prompt);
        CHECK(!strcmp(d.ex[0].response,
                      "The spelling of the given phrase \"freind\" is incorrect, the correct spelling is \"friend\"."),
              "record 0 response");
        CHECK(!strcmp(d.ex[2].text, "Below is an instruction that describes a task. Write a response that "
                                    "appropriately completes the request.\n\n### Instruction:\nConvert 45 "
                                    "kilometers to meters.\n\n### Response:\n45 kilometers is 45000 meters."),
              "record 2 text:\n%s", d.ex[2].text);
    }
    /* the book's split: 85% / 10% in file order */
    lorac_dataset tr, te, va;
    CHECK_OK(lorac_dataset_split(&d, 0.85, 0.1, 0, 0, &tr, &te, &va));
    CHECK(tr.n == 935 && te.n == 110 && va.n == 55 && te.ex[0].line == d.ex[935].line, "ch07 split %d/%d/%d", tr.n,
          te.n, va.n);
    lorac_dataset_free(&tr), lorac_dataset_free(&te), lorac_dataset_free(&va);
    CHECK(lorac_dataset_balance(&d, 1) == LORAC_ERR_ARG, "balance without labels");
    lorac_dataset_free(&d);
}

/* ---- hostile input ---- */

static void test_bad_input(void) {
    lorac_dataset d;
    lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
    lorac_status st;

    st = lorac_dataset_load(TMP("sms.tsv", "ham\thello\nham\tfine\nspam no tab here\n"), NULL, &d);
    expect_error("missing column", st, LORAC_ERR_DATA, &d,
                 "sms.tsv:3: row has 1 column but the label is column 0 and the text column 1",
                 "hint: is the file tab-separated? use --text-col/--label-col");
    st = lorac_dataset_load(TMP("e.tsv", "ham\thello\n \tno label\n"), NULL, &d);
    expect_error("empty label", st, LORAC_ERR_DATA, &d, "e.tsv:2: empty label (column 0)", "hint:");
    st = lorac_dataset_load(TMP("t.tsv", "ham\thello\nspam\t\n"), NULL, &d);
    expect_error("empty text", st, LORAC_ERR_DATA, &d, "t.tsv:2: empty text", NULL);
    o.text_col = "5";
    st = lorac_dataset_load(TMP("r.tsv", "ham\thello\n"), &o, &d);
    expect_error("text column out of range", st, LORAC_ERR_FORMAT, &d, "r.tsv:1: the text column 5 is out of range",
                 "the first row has 2 columns");
    o.text_col = "body";
    o.header = LORAC_HEADER_NO;
    st = lorac_dataset_load(TMP("n.tsv", "ham\thello\n"), &o, &d);
    expect_error("column name without header", st, LORAC_ERR_ARG, &d, "'body' is a name", "no header");
    o = (lorac_data_opts)LORAC_DATA_OPTS_DEFAULT;
    o.text_col = "body";
    st = lorac_dataset_load(TMP("h.csv", "label,text\n1,x\n"), &o, &d);
    expect_error("unknown column name", st, LORAC_ERR_FORMAT, &d, "h.csv:1: no column named 'body'", "label, text");
    o = (lorac_data_opts)LORAC_DATA_OPTS_DEFAULT;

    st = lorac_dataset_load(TMP("q.csv", "text,label\n\"fine\",1\n\"oops,1\nmore,0\n"), NULL, &d);
    expect_error("unterminated quote", st, LORAC_ERR_FORMAT, &d, "q.csv:3: the quoted field opened on this line is never closed",
                 "hint:");
    st = lorac_dataset_load(TMP("q2.csv", "text,label\n\"a\"b,1\n"), NULL, &d);
    expect_error("text after quote", st, LORAC_ERR_FORMAT, &d, "q2.csv:2: unexpected 'b' after the closing quote", NULL);

    st = lorac_dataset_load(TMP("u.jsonl", "{\"text\": \"ok\", \"label\": 1}\n{\"text\": \"caf\xe9\", \"label\": 1}\n"),
                            NULL, &d);
    expect_error("non-UTF-8 in JSON", st, LORAC_ERR_FORMAT, &d, "u.jsonl:2: invalid UTF-8 byte 0xe9 at column 14",
                 "hint: save the file as UTF-8");
    st = lorac_dataset_load(TMP("o.tsv", "ham\tover\xc0\xaflong\n"), NULL, &d);
    expect_error("overlong UTF-8", st, LORAC_ERR_FORMAT, &d, "o.tsv:1: invalid UTF-8 byte 0xc0", NULL);
    st = lorac_dataset_load(tmp_file("z.tsv", "ham\tnul\0byte\n", 13), NULL, &d);
    expect_error("NUL byte", st, LORAC_ERR_FORMAT, &d, "z.tsv:1: contains a NUL byte", NULL);

    st = lorac_dataset_load(TMP("empty.tsv", ""), NULL, &d);
    expect_error("empty file", st, LORAC_ERR_DATA, &d, "empty.tsv: no data rows", "hint:");
    st = lorac_dataset_load(TMP("head.csv", "text,label\n\n"), NULL, &d);
    expect_error("header only", st, LORAC_ERR_DATA, &d, "head.csv: no data rows", NULL);
    st = lorac_dataset_load(TMP("nocol.csv", "label,foo,bar\n1,2,3\n"), NULL, &d);
    expect_error("header without text column", st, LORAC_ERR_FORMAT, &d, "nocol.csv:1: the header (label, foo, bar) names no text column",
                 "--text-col");
    st = lorac_dataset_load(TMP("what", "just words\n"), NULL, &d);
    expect_error("unknown format", st, LORAC_ERR_FORMAT, &d, "what: cannot tell the format", "--format");
    o.format = "xml";
    st = lorac_dataset_load(TMP("x.tsv", "a\tb\n"), &o, &d);
    expect_error("bad --format", st, LORAC_ERR_ARG, &d, "unknown data format 'xml'", NULL);
    o.format = NULL;
    st = lorac_dataset_load("/nonexistent/sms.tsv", NULL, &d);
    expect_error("missing file", st, LORAC_ERR_IO, &d, "/nonexistent/sms.tsv: cannot open", NULL);

    /* JSON */
    st = lorac_dataset_load(TMP("s.json", "[\n {\"text\": \"a\", \"label\": 1},\n {\"text\": \"b\" \"label\": 0}\n]"),
                            NULL, &d);
    expect_error("JSON syntax", st, LORAC_ERR_FORMAT, &d, "s.json:3: invalid JSON", NULL);
    st = lorac_dataset_load(TMP("t.json", "[{\"text\": \"a\", \"label\": 1}"), NULL, &d);
    expect_error("truncated JSON array", st, LORAC_ERR_FORMAT, &d, "t.json:1: expected ',' or ']'", "truncated");
    st = lorac_dataset_load(TMP("l.jsonl", "{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\", \"label\": 0\n"), NULL,
                            &d);
    expect_error("JSONL syntax", st, LORAC_ERR_FORMAT, &d, "l.jsonl:2: invalid JSON", NULL);
    st = lorac_dataset_load(TMP("k.jsonl", "{\"text\": 5, \"label\": 1}\n"), NULL, &d);
    expect_error("text not a string", st, LORAC_ERR_DATA, &d, "k.jsonl:1: 'text' is a number, not a string", NULL);
    st = lorac_dataset_load(TMP("m.jsonl", "{\"text\": \"a\"}\n"), NULL, &d);
    expect_error("no label", st, LORAC_ERR_DATA, &d, "m.jsonl:1: record has no label", "--label-col");
    st = lorac_dataset_load(TMP("arr.jsonl", "[1, 2]\n"), NULL, &d);
    expect_error("not an object", st, LORAC_ERR_DATA, &d, "arr.jsonl:1: expected a JSON object, got an array", NULL);
    st = lorac_dataset_load_instructions(TMP("i.json", "[{\"instruction\": \"x\", \"input\": \"\"}]"), &d);
    expect_error("instruction without output", st, LORAC_ERR_DATA, &d, "i.json:1: record has no string \"output\"", NULL);
    st = lorac_dataset_load_instructions(TMP("i.tsv", "a\tb\n"), &d);
    expect_error("instructions from TSV", st, LORAC_ERR_FORMAT, &d, "i.tsv: instruction data must be", NULL);

    /* an explicit label list rejects other labels */
    const char *const order[] = {"ham", "spam", NULL};
    o.label_order = order;
    st = lorac_dataset_load(TMP("lo.tsv", "ham\ta\nspma\tb\n"), &o, &d);
    expect_error("label outside --labels", st, LORAC_ERR_DATA, &d, "lo.tsv:2: label 'spma' is not one of", "ham, spam");
    o.label_order = NULL;

    /* a truncated .gz */
    char gzpath[512];
    snprintf(gzpath, sizeof gzpath, "%s/cut.tsv.gz", test_tmpdir());
    gzFile g = gzopen(gzpath, "wb");
    for (int i = 0; i < 2000; i++) gzprintf(g, "ham\trow %d with some text to compress %d\n", i, i * 7919);
    gzclose(g);
    FILE *f = fopen(gzpath, "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(truncate(gzpath, size / 2) == 0, "truncate");
    st = lorac_dataset_load(gzpath, NULL, &d);
    expect_error("truncated gzip", st, LORAC_ERR_FORMAT, &d, "cut.tsv.gz: cannot decompress", NULL);
}

static void test_skip_bad(void) {
    lorac_dataset d;
    lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
    o.skip_bad = 1;
    g_warnings = 0;
    lorac_set_log(count_log, NULL);
    CHECK_OK(lorac_dataset_load(TMP("skip.tsv", "ham\ta\nno tab\nspam\tb\n\tc\nham\td\n"), &o, &d));
    CHECK(d.n == 3 && d.n_skipped == 2 && d.ex[2].line == 5, "kept %d skipped %d", d.n, d.n_skipped);
    CHECK(g_warnings == 3, "warnings %d (two rows and a summary)", g_warnings);
    lorac_dataset_free(&d);
    CHECK_OK(lorac_dataset_load(TMP("skip.jsonl", "{\"text\": \"a\", \"label\": 1}\n{bad json\n{\"text\": \"b\"}\n"), &o,
                                &d));
    CHECK(d.n == 1 && d.n_skipped == 2, "jsonl kept %d skipped %d", d.n, d.n_skipped);
    lorac_dataset_free(&d);
    const char *const order[] = {"ham", "spam", NULL};
    o.label_order = order;
    CHECK_OK(lorac_dataset_load(TMP("skip2.tsv", "ham\ta\nspma\tb\nspam\tc\n"), &o, &d));
    CHECK(d.n == 2 && d.n_skipped == 1 && d.ex[1].label == 1, "unknown label skipped");
    lorac_dataset_free(&d);
    o.label_order = NULL;
    lorac_status st = lorac_dataset_load(TMP("allbad.tsv", "a\nb\n"), &o, &d);
    expect_error("all rows bad", st, LORAC_ERR_DATA, &d, "allbad.tsv: all 2 rows were bad", "line 1: row has 1 column");
    lorac_set_log(NULL, NULL);
    /* structural errors stay fatal */
    st = lorac_dataset_load(TMP("q3.csv", "text,label\n\"open,1\n"), &o, &d);
    CHECK(st == LORAC_ERR_FORMAT, "unterminated quote with skip_bad: %s", lorac_status_name(st));
}

int main(void) {
    test_sms();
    test_split_rounding();
    test_imdb();
    test_csv_quoting();
    test_jsonl();
    test_text_and_instructions();
    test_bad_input();
    test_skip_bad();
    return test_summary("test_dataset");
}
