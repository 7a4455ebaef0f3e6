/* csv.h - a row reader for delimited text: TSV (tab-separated, no quoting)
 * and CSV (comma-separated, RFC 4180 quoting: a field in double quotes may
 * hold commas, newlines and doubled quotes ""). A quote inside an unquoted
 * field is kept as a literal character, as Python's csv module does.
 *
 * The reader works in place: it cuts the caller's buffer into NUL-terminated
 * fields, so the buffer must be writable and outlive the rows. Lines may end
 * in LF or CRLF; empty lines are skipped. Line numbers are 1-based and name
 * the line where a record starts (a quoted field can span lines). */
#ifndef LORAC_IO_CSV_H
#define LORAC_IO_CSV_H

#include <stddef.h>

#include "core/status.h"

typedef struct lorac_csv {
    char *p, *end;     /* the unread rest of the buffer */
    char delim;        /* '\t' or ',' */
    int quoting;       /* 1: RFC 4180 quotes, 0: none */
    int line;          /* line number at p */
    const char *path;  /* for error messages (borrowed) */
    /* the current row, valid until the next call: */
    char **field;      /* [n_field] pointers into the buffer */
    int n_field, cap_field;
    int row_line;      /* line where the current row starts */
} lorac_csv;

/* Start reading buf[0..len). buf[len] must be a writable byte (for a NUL). */
void lorac_csv_init(lorac_csv *c, char *buf, size_t len, char delim, int quoting, const char *path);

/* Read the next row. *got = 1 with the row in c->field, or *got = 0 at the
 * end of the input. LORAC_ERR_FORMAT for an unterminated quoted field or
 * text after a closing quote; LORAC_ERR_NOMEM. */
lorac_status lorac_csv_next(lorac_csv *c, int *got);

/* Free the field array (not the buffer). */
void lorac_csv_free(lorac_csv *c);

#endif
