/* test_malformed_corpus.c - the on-disk corpus of malformed files in
 * tests/malformed/ (written by make_corpus.py): every file listed in
 * MANIFEST.tsv is opened with its reader, which must return the listed
 * status with an error message holding the listed text, on one line. One
 * table line per file: "file | reader | status | message". Also the resource
 * limits that need a large (sparse) file rather than a corpus file.
 * Run under the ASan build too: no reader may crash, leak or read out of
 * bounds on any of them. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "io/dataset.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/tokenizer.h"
#include "lora/adapter_io.h"
#include "models/config.h"
#include "models/model.h"
#include "testutil.h"

/* ------------------------------------------------------------- readers */

static lorac_status rd_safetensors(const char *p) {
    lorac_st *st = NULL;
    lorac_status s = lorac_st_open(p, &st);
    lorac_st_close(st);
    return s;
}

static lorac_status rd_gguf(const char *p) {
    lorac_gguf *g = NULL;
    lorac_status s = lorac_gguf_open(p, &g);
    lorac_gguf_close(g);
    return s;
}

static lorac_status rd_model(const char *p) {
    lorac_model *m = NULL;
    lorac_status s = lorac_model_load(p, &m);
    lorac_model_free(m);
    return s;
}

static lorac_status rd_model_nf4(const char *p) {
    lorac_model *m = NULL;
    lorac_status s = lorac_model_load_quantized(p, LORAC_QLOAD_NF4, &m);
    lorac_model_free(m);
    return s;
}

static lorac_status rd_config(const char *p) {
    lorac_config c;
    return lorac_config_load_json(p, &c);
}

static lorac_status rd_tokenizer(const char *p) {
    lorac_tokenizer *t = NULL;
    lorac_status s = lorac_tokenizer_load(p, &t);
    lorac_tokenizer_free(t);
    return s;
}

static lorac_status rd_adapter_config(const char *p) {
    lorac_lora_config c;
    int n = 0;
    char *labels[64] = {0};
    lorac_status s = lorac_adapter_read_config(p, &c, &n, labels, 64);
    for (int i = 0; i < 64; i++) free(labels[i]);
    return s;
}

/* The adapter goes onto the tiny GPT-2 fixture (n_embd 32). */
static lorac_status rd_adapter(const char *p) {
    lorac_model *m = NULL;
    lorac_status s = lorac_model_load(test_src_path("tests/fixtures/models/tiny_gpt2"), &m);
    if (s != LORAC_OK) {
        fprintf(stderr, "cannot load the tiny_gpt2 fixture: %s\n", lorac_last_error());
        exit(2);
    }
    lorac_lora_config c;
    s = lorac_adapter_load(m, p, &c);
    lorac_model_free(m);
    return s;
}

static lorac_status rd_dataset(const char *p) {
    lorac_dataset d = {0};
    lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
    lorac_status s = lorac_dataset_load(p, &o, &d);
    lorac_dataset_free(&d);
    return s;
}

static lorac_status rd_dataset_text(const char *p) {
    lorac_dataset d = {0};
    lorac_status s = lorac_dataset_load_text(p, &d);
    lorac_dataset_free(&d);
    return s;
}

static lorac_status rd_instructions(const char *p) {
    lorac_dataset d = {0};
    lorac_status s = lorac_dataset_load_instructions(p, &d);
    lorac_dataset_free(&d);
    return s;
}

static const struct {
    const char *name;
    lorac_status (*open)(const char *);
} g_readers[] = {
    {"safetensors", rd_safetensors},   {"gguf", rd_gguf},         {"model", rd_model},
    {"model_nf4", rd_model_nf4},       {"config", rd_config},     {"tokenizer", rd_tokenizer},
    {"adapter_config", rd_adapter_config}, {"adapter", rd_adapter}, {"dataset", rd_dataset},
    {"dataset_text", rd_dataset_text}, {"instructions", rd_instructions},
};

static const char *const g_status[] = {
    "LORAC_OK",        "LORAC_ERR_IO",          "LORAC_ERR_FORMAT",  "LORAC_ERR_SHAPE", "LORAC_ERR_ARG",
    "LORAC_ERR_NOMEM", "LORAC_ERR_UNSUPPORTED", "LORAC_ERR_NUMERIC", "LORAC_ERR_DATA",
};
#define N_STATUS (int)(sizeof g_status / sizeof g_status[0])

/* ------------------------------------------------------------ manifest */

static int run_manifest(void) {
    char root[1024], path[2048];
    snprintf(root, sizeof root, "%s", test_src_path("tests/malformed"));
    snprintf(path, sizeof path, "%s/MANIFEST.tsv", root);
    char *text = NULL;
    size_t len = 0;
    if (lorac_read_file(path, 1 << 20, &text, &len) != LORAC_OK) {
        CHECK(0, "cannot read %s: %s", path, lorac_last_error());
        return 0;
    }
    int n = 0, lineno = 0;
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        if (line[0] == '#' || !strncmp(line, "file\t", 5) || !line[0]) continue;
        char *col[5] = {0};
        int nc = 0;
        for (char *p = line; nc < 5;) {
            col[nc++] = p;
            p = strchr(p, '\t');
            if (!p) break;
            *p++ = 0;
        }
        if (nc < 4) {
            CHECK(0, "MANIFEST.tsv:%d: expected file, reader, status, expected text", lineno);
            continue;
        }
        const char *file = col[0], *reader = col[1], *want_name = col[2], *expected = col[3];
        int want = -1;
        for (int i = 0; i < N_STATUS; i++)
            if (!strcmp(g_status[i], want_name)) want = i;
        lorac_status (*open)(const char *) = NULL;
        for (size_t i = 0; i < sizeof g_readers / sizeof g_readers[0]; i++)
            if (!strcmp(g_readers[i].name, reader)) open = g_readers[i].open;
        if (want < 0 || !open) {
            CHECK(0, "MANIFEST.tsv:%d: unknown status '%s' or reader '%s'", lineno, want_name, reader);
            continue;
        }
        char fp[2048];
        snprintf(fp, sizeof fp, "%s/%s", root, file);
        lorac_clear_error();
        lorac_status got = open(fp);
        const char *msg = got == LORAC_OK ? "(loaded)" : lorac_last_error();
        /* the message without the corpus directory, to keep the table short */
        const char *shown = strstr(msg, root) ? strstr(msg, root) + strlen(root) + 1 : msg;
        printf("%-52s | %-14s | %-21s | %s\n", file, reader, got < N_STATUS ? g_status[got] : "?", shown);
        CHECK(got == (lorac_status)want, "%s (%s): got %s, want %s: %s", file, reader,
              got < N_STATUS ? g_status[got] : "?", want_name, msg);
        if (want != LORAC_OK) {
            CHECK(strstr(msg, expected) != NULL, "%s (%s): message lacks \"%s\": %s", file, reader, expected, msg);
            CHECK(strchr(msg, '\n') == NULL, "%s (%s): message is more than one line: %s", file, reader, msg);
        }
        n++;
    }
    free(text);
    return n;
}

/* --------------------------------------------------- limits on big files */

/* A sparse file of `size` bytes starting with `head`. */
static const char *sparse(const char *name, const void *head, size_t n, off_t size) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || fwrite(head, 1, n, f) != n || fclose(f) != 0 || truncate(p, size) != 0) {
        CHECK(0, "cannot write %s", p);
        return p;
    }
    return p;
}

static void expect_limit(lorac_status got, lorac_status want, const char *phrase, const char *what) {
    const char *msg = lorac_last_error();
    printf("%-52s | %-14s | %-21s | %s\n", what, "(limit)", got < N_STATUS ? g_status[got] : "?", msg);
    CHECK(got == want && strstr(msg, phrase), "%s: got %d: %s", what, (int)got, msg);
}

static void test_limits(void) {
    /* GGUF: 2M tensors would fit in a 64 MB file by bytes, but not by the cap */
    struct {
        char magic[4];
        uint32_t version;
        uint64_t n_tensors, n_kv;
    } h = {{'G', 'G', 'U', 'F'}, 3, 2u << 20, 0}, k = {{'G', 'G', 'U', 'F'}, 3, 0, 2u << 20};
    expect_limit(rd_gguf(sparse("many_tensors.gguf", &h, sizeof h, 64 << 20)), LORAC_ERR_FORMAT,
                 "tensor count 2097152 is over the limit of 1048576", "64 MB sparse GGUF, 2M tensors");
    expect_limit(rd_gguf(sparse("many_kv.gguf", &k, sizeof k, 64 << 20)), LORAC_ERR_FORMAT,
                 "metadata count 2097152 is over the limit of 1048576", "64 MB sparse GGUF, 2M metadata keys");
    /* safetensors: a 101 MB header is refused before it is parsed */
    uint64_t hl = 101u * 1000 * 1000;
    expect_limit(rd_safetensors(sparse("big_header.safetensors", &hl, 8, (off_t)hl + 8)), LORAC_ERR_FORMAT,
                 "is over the 100 MB limit", "101 MB sparse safetensors header");
}

int main(void) {
    printf("%-52s | %-14s | %-21s | %s\n", "file", "reader", "status", "message");
    int n = run_manifest();
    test_limits();
    printf("test_malformed_corpus: %d corpus files checked\n", n);
    CHECK(n >= 50, "the corpus has %d cases, want at least 50", n);
    return test_summary("test_malformed_corpus");
}
