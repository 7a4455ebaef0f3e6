/* csv.c - in-place TSV / CSV row reader (see csv.h). */
#include "io/csv.h"

#include <stdlib.h>
#include <string.h>

void lorac_csv_init(lorac_csv *c, char *buf, size_t len, char delim, int quoting, const char *path) {
    memset(c, 0, sizeof *c);
    c->p = buf;
    c->end = buf + len;
    c->delim = delim;
    c->quoting = quoting;
    c->line = 1;
    c->path = path;
}

void lorac_csv_free(lorac_csv *c) {
    free(c->field);
    c->field = NULL;
    c->n_field = c->cap_field = 0;
}

static lorac_status push_field(lorac_csv *c, char *f) {
    if (c->n_field == c->cap_field) {
        int cap = c->cap_field ? 2 * c->cap_field : 16;
        char **nf = realloc(c->field, (size_t)cap * sizeof *nf);
        if (!nf) return lorac_fail(LORAC_ERR_NOMEM, "%s:%d: out of memory splitting a row", c->path, c->row_line);
        c->field = nf;
        c->cap_field = cap;
    }
    c->field[c->n_field++] = f;
    return LORAC_OK;
}

/* End of a line at q: "\n", "\r\n", or the end of the buffer. Returns the
 * length of the line ending (0 when q is not at one). */
static int eol_len(const lorac_csv *c, const char *q) {
    if (q >= c->end) return 0;
    if (*q == '\n') return 1;
    if (*q == '\r' && q + 1 < c->end && q[1] == '\n') return 2;
    if (*q == '\r' && q + 1 == c->end) return 1;
    return 0;
}

/* A quoted field starting at c->p (on the opening quote). The unquoted text is
 * written over the buffer from the opening quote on (it is never longer than
 * what it replaces). On return c->p is just after the closing quote. */
static lorac_status read_quoted(lorac_csv *c, char **field) {
    int open_line = c->line;
    char *r = c->p + 1, *w = c->p;
    *field = w;
    for (;;) {
        if (r >= c->end)
            return lorac_fail(LORAC_ERR_FORMAT,
                              "%s:%d: the quoted field opened on this line is never closed; hint: a stray \" in "
                              "a field? double it (\"\") or quote the whole field",
                              c->path, open_line);
        if (*r == '"') {
            if (r + 1 < c->end && r[1] == '"') { /* "" is one literal quote */
                *w++ = '"';
                r += 2;
                continue;
            }
            r++; /* the closing quote */
            break;
        }
        if (*r == '\n') c->line++;
        *w++ = *r++;
    }
    /* After the closing quote: a delimiter, a line end, or the end of input. */
    if (r < c->end && *r != c->delim && !eol_len(c, r))
        return lorac_fail(LORAC_ERR_FORMAT,
                          "%s:%d: unexpected '%c' after the closing quote of a field; hint: quotes inside a quoted "
                          "field must be doubled (\"\")",
                          c->path, c->line, *r);
    *w = 0; /* safe: w < r, and r's byte is still unread */
    c->p = r;
    return LORAC_OK;
}

lorac_status lorac_csv_next(lorac_csv *c, int *got) {
    *got = 0;
    c->n_field = 0;
    /* skip empty lines */
    for (int n; c->p < c->end && (n = eol_len(c, c->p)) > 0;) {
        c->p += n;
        c->line++;
    }
    if (c->p >= c->end) return LORAC_OK;
    c->row_line = c->line;
    for (;;) {
        char *f;
        if (c->quoting && *c->p == '"') {
            LORAC_TRY(read_quoted(c, &f));
        } else {
            f = c->p;
            while (c->p < c->end && *c->p != c->delim && !eol_len(c, c->p)) c->p++;
        }
        LORAC_TRY(push_field(c, f));
        /* c->p is on a delimiter, a line end, or the end of the buffer. */
        if (c->p < c->end && *c->p == c->delim) {
            *c->p++ = 0;
            continue;
        }
        int n = eol_len(c, c->p);
        *c->p = 0; /* the end of the buffer has one spare byte */
        c->p += n;
        if (n) c->line++;
        break;
    }
    *got = 1;
    return LORAC_OK;
}
