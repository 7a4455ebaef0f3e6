/* harness_dataset.c - fuzz entry point for the data readers: TSV, CSV,
 * JSONL, JSON arrays, plain text and instruction data, plain or gzipped.
 *
 * The first byte picks how the rest is read:
 *   bits 0-2  the file name: data.tsv .csv .jsonl .json .txt .dat (sniffed),
 *             .tsv.gz (the bytes as they are, a hostile gzip stream), or
 *             .jsonl.gz (the bytes gzip-compressed here first)
 *   bits 3-4  the loader: lorac_dataset_load with default options, the same
 *             with explicit options (header, columns, label order),
 *             lorac_dataset_load_text, lorac_dataset_load_instructions
 *   bit 5     skip_bad
 *   bits 6-7  explicit options only: the format forced to none / tsv / csv / json
 * A dataset that loads is counted, split, subset and balanced. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "harness.h"
#include "io/dataset.h"

static void use_dataset(lorac_dataset *d) {
    for (int i = 0; i < d->n; i++)
        if (!d->ex[i].text || (d->ex[i].label >= d->n_labels && d->n_labels > 0)) abort();
    for (int l = 0; l < d->n_labels; l++) (void)lorac_dataset_count(d, l);
    lorac_dataset tr = {0}, va = {0}, te = {0}, sub = {0};
    (void)lorac_dataset_split(d, 0.7, 0.1, 1, 1, &tr, &va, &te);
    (void)lorac_dataset_subset(d, 3, &sub);
    if (d->n_labels > 0) (void)lorac_dataset_balance(&sub, 7);
    lorac_dataset_free(&tr);
    lorac_dataset_free(&va);
    lorac_dataset_free(&te);
    lorac_dataset_free(&sub);
}

int lorac_fuzz_dataset(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const names[] = {"data.tsv",  "data.csv", "data.jsonl",  "data.json",
                                        "data.txt",  "data.dat", "data.tsv.gz", "data.jsonl.gz"};
    static const char *const formats[] = {NULL, "tsv", "csv", "json"};
    static const char *const order[] = {"ham", "spam", NULL};
    const unsigned sel = data[0];
    const uint8_t *body = data + 1;
    size_t n = size - 1;
    fuzz_reset();
    const char *path;
    if ((sel & 7) == 7) {
        uLongf zn = compressBound((uLong)n) + 32;
        uint8_t *z = malloc(zn);
        z_stream s = {0};
        /* windowBits 15 + 16: a gzip wrapper, as gzread expects */
        if (!z || deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
        s.next_in = (Bytef *)body;
        s.avail_in = (uInt)n;
        s.next_out = z;
        s.avail_out = (uInt)zn;
        if (deflate(&s, Z_FINISH) != Z_STREAM_END) abort();
        path = fuzz_write(names[7], z, s.total_out);
        deflateEnd(&s);
        free(z);
    } else {
        path = fuzz_write(names[sel & 7], body, n);
    }
    lorac_dataset d = {0};
    lorac_data_opts o = LORAC_DATA_OPTS_DEFAULT;
    o.skip_bad = (sel >> 5) & 1;
    lorac_status st;
    switch ((sel >> 3) & 3) {
    case 0:
        st = lorac_dataset_load(path, &o, &d);
        break;
    case 1:
        o.format = formats[sel >> 6];
        o.header = LORAC_HEADER_YES;
        o.text_col = (sel & 0x40) ? "1" : "text";
        o.label_col = (sel & 0x80) ? "label" : "0";
        o.label_order = order;
        st = lorac_dataset_load(path, &o, &d);
        break;
    case 2:
        st = lorac_dataset_load_text(path, &d);
        break;
    default:
        st = lorac_dataset_load_instructions(path, &d);
        break;
    }
    if (st == LORAC_OK) use_dataset(&d);
    lorac_dataset_free(&d);
    return 0;
}
