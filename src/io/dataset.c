/* dataset.c - reading data files (gzip aware), format detection, the example
 * builder with label mapping, and the public load / free functions. The
 * per-format parsers live in dataset_table.c (TSV/CSV) and dataset_json.c
 * (JSONL/JSON); balance / split / subset in dataset_split.c. */
#include "io/dataset.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "io/dataset_internal.h"

/* Data files larger than this (after decompression) are refused: line
 * numbers and example counts are ints, and 2 GiB of text is far beyond what a
 * LoRA run reads. */
#define DS_MAX_BYTES ((size_t)1 << 31)

/* ---- reading a file ---- */

/* Offset of the first byte that breaks UTF-8 (overlong forms, surrogates and
 * code points above U+10FFFF included), or n when the text is valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int more;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) more = 1;
        else if (c == 0xE0) more = 2, lo = 0xA0;
        else if (c >= 0xE1 && c <= 0xEF) more = 2, hi = (c == 0xED ? 0x9F : 0xBF);
        else if (c == 0xF0) more = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) more = 3;
        else if (c == 0xF4) more = 3, hi = 0x8F;
        else return i;
        if (i + (size_t)more >= n) return i; /* cut off by the end of the file */
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (int k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += (size_t)more + 1;
    }
    return n;
}

int ds_line_of(const char *buf, size_t off) {
    int line = 1;
    for (size_t i = 0; i < off; i++) line += buf[i] == '\n';
    return line;
}

static lorac_status check_text(const char *path, char *buf, size_t len) {
    const char *nul = memchr(buf, 0, len);
    if (nul)
        return lorac_fail(LORAC_ERR_FORMAT, "%s:%d: contains a NUL byte; hint: is this a binary file?", path,
                          ds_line_of(buf, (size_t)(nul - buf)));
    size_t bad = utf8_invalid_at((const unsigned char *)buf, len);
    if (bad < len) {
        size_t col = bad;
        while (col > 0 && buf[col - 1] != '\n') col--;
        return lorac_fail(LORAC_ERR_FORMAT,
                          "%s:%d: invalid UTF-8 byte 0x%02x at column %zu; hint: save the file as UTF-8 "
                          "(e.g. iconv -f latin1 -t utf-8)",
                          path, ds_line_of(buf, bad), (unsigned char)buf[bad], bad - col + 1);
    }
    return LORAC_OK;
}

lorac_status ds_read_file(const char *path, char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    struct stat st;
    if (stat(path, &st) != 0) return lorac_fail(LORAC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return lorac_fail(LORAC_ERR_IO, "%s: not a regular file", path);
    /* gzread reads plain files unchanged, so one path serves both. */
    gzFile f = gzopen(path, "rb");
    if (!f) return lorac_fail(LORAC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    gzbuffer(f, 1 << 17);
    size_t cap = (size_t)st.st_size + 1 < (1 << 16) ? (1 << 16) : (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    lorac_status s = LORAC_OK;
    for (;;) {
        if (!buf) {
            s = lorac_fail(LORAC_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, cap);
            break;
        }
        if (cap - len < 2) {
            if (cap >= DS_MAX_BYTES) {
                s = lorac_fail(LORAC_ERR_FORMAT, "%s: more than %zu bytes of text; hint: split the file", path,
                               DS_MAX_BYTES);
                break;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) free(buf);
            buf = nb;
            cap *= 2;
            continue;
        }
        size_t want = cap - len - 1;
        if (want > (1u << 30)) want = 1u << 30;
        int got = gzread(f, buf + len, (unsigned)want);
        if (got < 0) {
            int zerr;
            const char *msg = gzerror(f, &zerr);
            s = lorac_fail(LORAC_ERR_FORMAT, "%s: cannot decompress: %s; hint: is the .gz file truncated?", path,
                           zerr == Z_ERRNO ? strerror(errno) : msg);
            break;
        }
        if (got == 0) {
            /* A gzip stream cut short reads as a plain end of file; zlib
             * reports it only through gzerror. */
            int zerr;
            gzerror(f, &zerr);
            if (zerr == Z_BUF_ERROR)
                s = lorac_fail(LORAC_ERR_FORMAT,
                               "%s: cannot decompress: the gzip data ends early after %zu bytes; hint: the .gz "
                               "file is truncated, download it again",
                               path, len);
            break;
        }
        len += (size_t)got;
    }
    gzclose(f);
    if (s != LORAC_OK) {
        free(buf);
        return s;
    }
    buf[len] = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 byte order mark */
        memmove(buf, buf + 3, len - 2);
        len -= 3;
    }
    s = check_text(path, buf, len);
    if (s != LORAC_OK) {
        free(buf);
        return s;
    }
    *out = buf;
    *out_len = len;
    return LORAC_OK;
}

/* ---- format detection ---- */

static int format_from_name(const char *s, ds_format *f) {
    static const struct {
        const char *name;
        ds_format fmt;
    } names[] = {{"tsv", DS_TSV}, {"tab", DS_TSV},     {"csv", DS_CSV}, {"jsonl", DS_JSONL},
                 {"ndjson", DS_JSONL}, {"json", DS_JSON}, {"txt", DS_TXT}, {"text", DS_TXT}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(s, names[i].name) == 0) {
            *f = names[i].fmt;
            return 1;
        }
    return 0;
}

lorac_status ds_detect_format(const char *path, const char *name, const char *buf, int fallback_txt,
                              ds_format *out) {
    if (name) {
        if (format_from_name(name, out)) return LORAC_OK;
        return lorac_fail(LORAC_ERR_ARG, "unknown data format '%s'; hint: one of tsv, csv, jsonl, json", name);
    }
    /* The extension, ignoring a trailing .gz. */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char ext[16] = "";
    size_t n = strlen(base);
    if (n > 3 && strcasecmp(base + n - 3, ".gz") == 0) n -= 3;
    for (size_t i = n; i > 0; i--)
        if (base[i - 1] == '.') {
            if (n - i < sizeof ext) {
                memcpy(ext, base + i, n - i);
                ext[n - i] = 0;
            }
            break;
        }
    if (ext[0] && format_from_name(ext, out) && !(*out == DS_TXT && !fallback_txt)) return LORAC_OK;
    if (fallback_txt) {
        *out = DS_TXT;
        return LORAC_OK;
    }
    /* Sniff: the first non-space character, then the first line. */
    const char *p = buf;
    while (*p && isspace((unsigned char)*p)) p++;
    if (*p == '[') *out = DS_JSON;
    else if (*p == '{') *out = DS_JSONL;
    else {
        size_t line = strcspn(buf, "\n");
        if (memchr(buf, '\t', line)) *out = DS_TSV;
        else if (memchr(buf, ',', line)) *out = DS_CSV;
        else
            return lorac_fail(LORAC_ERR_FORMAT,
                              "%s: cannot tell the format: the first line has no tab or comma and the name no "
                              ".tsv/.csv/.jsonl/.json extension; hint: pass --format",
                              path);
    }
    return LORAC_OK;
}

/* ---- column names ---- */

static int in_list(const char *s, const char *const *list) {
    for (; *list; list++)
        if (strcasecmp(s, *list) == 0) return 1;
    return 0;
}

int ds_is_text_name(const char *s) {
    static const char *const names[] = {"text", "sentence", "review", "sms", "message", "content", NULL};
    return in_list(s, names);
}

int ds_is_label_name(const char *s) {
    static const char *const names[] = {"label", "class", "category", "sentiment", "target", NULL};
    return in_list(s, names);
}

/* ---- plain text: documents separated by blank lines ---- */

static int blank_line(const char *p, const char *eol) {
    for (; p < eol; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r') return 0;
    return 1;
}

/* Each run of non-blank lines is one document: its lines joined by '\n'
 * (a CR before a line's LF is dropped). Works in place on buf. */
static lorac_status load_documents(ds_builder *b, char *buf, size_t len) {
    char *p = buf, *end = buf + len;
    char *doc = NULL, *w = NULL; /* the document being built, written over buf */
    int line = 1, doc_line = 0;
    while (p <= end) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if (!blank_line(p, eol)) {
            if (!doc) {
                doc = w = p;
                doc_line = line;
            } else {
                *w++ = '\n';
            }
            size_t n = (size_t)(eol - p);
            if (n && p[n - 1] == '\r') n--;
            memmove(w, p, n);
            w += n;
        } else if (doc) {
            *w = 0;
            LORAC_TRY(ds_add(b, doc_line, doc, NULL, NULL, NULL));
            doc = NULL;
        }
        p = eol + 1;
        line++;
    }
    if (doc) {
        *w = 0;
        LORAC_TRY(ds_add(b, doc_line, doc, NULL, NULL, NULL));
    }
    return LORAC_OK;
}

/* ---- public loaders ---- */

lorac_status lorac_dataset_load(const char *path, const lorac_data_opts *o, lorac_dataset *out) {
    static const lorac_data_opts defaults = LORAC_DATA_OPTS_DEFAULT;
    if (!o) o = &defaults;
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    LORAC_TRY(ds_read_file(path, &buf, &len));
    ds_format fmt;
    ds_builder b;
    lorac_status st = ds_detect_format(path, o->format, buf, 0, &fmt);
    if (st == LORAC_OK && fmt == DS_TXT)
        st = lorac_fail(LORAC_ERR_ARG, "%s: plain text has no labels; hint: use --format tsv, csv, jsonl or json",
                        path);
    if (st == LORAC_OK) st = ds_begin(&b, path, o->skip_bad, out);
    else {
        free(buf);
        return st;
    }
    if (st == LORAC_OK) {
        if (fmt == DS_TSV || fmt == DS_CSV) st = ds_load_table(&b, buf, len, fmt, o, 1);
        else st = ds_load_json(&b, buf, len, fmt, o, 1, 0);
    }
    st = ds_finish(&b, o->label_order, st);
    free(buf);
    return st;
}

lorac_status lorac_dataset_load_text(const char *path, lorac_dataset *out) {
    static const lorac_data_opts defaults = LORAC_DATA_OPTS_DEFAULT;
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    LORAC_TRY(ds_read_file(path, &buf, &len));
    ds_format fmt = DS_TXT;
    ds_builder b;
    lorac_status st = ds_detect_format(path, NULL, buf, 1, &fmt);
    if (st == LORAC_OK) st = ds_begin(&b, path, 0, out);
    else {
        free(buf);
        return st;
    }
    if (st == LORAC_OK) {
        if (fmt == DS_TXT) st = load_documents(&b, buf, len);
        else if (fmt == DS_TSV || fmt == DS_CSV) st = ds_load_table(&b, buf, len, fmt, &defaults, 0);
        else st = ds_load_json(&b, buf, len, fmt, &defaults, 0, 0);
    }
    st = ds_finish(&b, NULL, st);
    free(buf);
    return st;
}

lorac_status lorac_dataset_load_instructions(const char *path, lorac_dataset *out) {
    static const lorac_data_opts defaults = LORAC_DATA_OPTS_DEFAULT;
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    LORAC_TRY(ds_read_file(path, &buf, &len));
    ds_format fmt;
    ds_builder b;
    lorac_status st = ds_detect_format(path, NULL, buf, 0, &fmt);
    if (st == LORAC_OK && fmt != DS_JSON && fmt != DS_JSONL)
        st = lorac_fail(LORAC_ERR_FORMAT,
                        "%s: instruction data must be a JSON array or JSONL of {\"instruction\", \"input\", "
                        "\"output\"} or {\"messages\": [...]} objects; hint: convert the file to .json or .jsonl",
                        path);
    if (st == LORAC_OK) st = ds_begin(&b, path, 0, out);
    else {
        free(buf);
        return st;
    }
    if (st == LORAC_OK) st = ds_load_json(&b, buf, len, fmt, &defaults, 0, 1);
    st = ds_finish(&b, NULL, st);
    free(buf);
    return st;
}

char *lorac_alpaca_prompt(const char *instruction, const char *input) {
    static const char intro[] = "Below is an instruction that describes a task. "
                                "Write a response that appropriately completes the request."
                                "\n\n### Instruction:\n";
    static const char in_hdr[] = "\n\n### Input:\n", resp_hdr[] = "\n\n### Response:\n";
    int has_input = input && input[0];
    size_t n = strlen(intro) + strlen(instruction) + (has_input ? strlen(in_hdr) + strlen(input) : 0) +
               strlen(resp_hdr) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    snprintf(s, n, "%s%s%s%s%s", intro, instruction, has_input ? in_hdr : "", has_input ? input : "", resp_hdr);
    return s;
}

void lorac_dataset_free(lorac_dataset *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) ds_free_example(&d->ex[i]);
    free(d->ex);
    for (int i = 0; i < d->n_labels; i++) free(d->label_names[i]);
    free(d->label_names);
    free(d->path);
    memset(d, 0, sizeof *d);
}

int lorac_dataset_count(const lorac_dataset *d, int label) {
    int c = 0;
    for (int i = 0; i < d->n; i++) c += d->ex[i].label == label;
    return c;
}
