/* bench_tokenize - tokenizer throughput on a real text.
 *
 *   bench_tokenize TOKENIZER TEXTFILE [REPEATS]
 *
 * TOKENIZER: a .gguf (its metadata) or anything lorac_tokenizer_load takes.
 * Encodes the whole file as one text (no special tokens added) REPEATS
 * times (default 5) and prints the best time, tokens/s and MB/s, plus the
 * load time; then the same per line (one encode call per line, as a data
 * set is tokenized). bench/bench_tokenize_hf.py measures transformers'
 * fast tokenizer the same way. One thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "io/gguf.h"
#include "io/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_tokenize: %s: %s\n", what, lorac_last_error());
    exit(1);
}

static lorac_tokenizer *load(const char *path) {
    lorac_tokenizer *t = NULL;
    size_t n = strlen(path);
    if (n > 5 && !strcmp(path + n - 5, ".gguf")) {
        lorac_gguf *g;
        if (lorac_gguf_open_metadata(path, &g) != LORAC_OK) die(path);
        lorac_status st = lorac_tokenizer_from_gguf(g, &t);
        lorac_gguf_close(g);
        if (st != LORAC_OK) die(path);
    } else if (lorac_tokenizer_load(path, &t) != LORAC_OK) {
        die(path);
    }
    return t;
}

/* Best of `reps` runs: encode s[0..n) whole (lines = 0) or line by line. */
static double best_time(const lorac_tokenizer *t, const char *s, size_t n, int lines, int reps, long *tokens) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        long total = 0;
        double t0 = now();
        for (size_t i = 0; i < n;) {
            size_t end = lines ? i : n;
            while (lines && end < n && s[end] != '\n') end++;
            int *ids, k;
            if (lorac_tokenizer_encode(t, s + i, end - i, 0, &ids, &k) != LORAC_OK) die("encode");
            free(ids);
            total += k;
            i = end + 1;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
        *tokens = total;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenize TOKENIZER TEXTFILE [REPEATS]\n");
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    double t0 = now();
    lorac_tokenizer *t = load(argv[1]);
    double load_s = now() - t0;
    char *text;
    size_t n;
    if (lorac_read_file(argv[2], (size_t)1 << 30, &text, &n) != LORAC_OK) die(argv[2]);
    printf("tokenizer %s (%s, %d pieces), loaded in %.3f s; text %s, %zu bytes\n", argv[1], lorac_tokenizer_kind(t),
           lorac_tokenizer_vocab_size(t), load_s, argv[2], n);
    for (int lines = 0; lines < 2; lines++) {
        long tokens = 0;
        double s = best_time(t, text, n, lines, reps, &tokens);
        printf("lorac %-10s %8ld tokens in %.4f s: %10.0f tokens/s, %6.2f MB/s (best of %d)\n",
               lines ? "per line" : "whole", tokens, s, (double)tokens / s, (double)n / s / 1e6, reps);
    }
    free(text);
    lorac_tokenizer_free(t);
    return 0;
}
