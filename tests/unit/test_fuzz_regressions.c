/* test_fuzz_regressions.c - replays every input under
 * tests/fuzz-regressions/<harness>/ through the same entry point the
 * libFuzzer target fuzz_<harness> runs (fuzz/harness_*.c), built with the
 * normal compiler. Each file is an input that once crashed a reader (kept by
 * scripts/fuzz) or a hand-made one; every reader must now answer it with a
 * clean error or a clean load. A crash fails the test by killing it; under
 * the suite's ASan build a memory error or leak does too. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"
#include "harness.h"
#include "testutil.h"

typedef struct harness {
    const char *name;
    int (*fn)(const uint8_t *, size_t);
} harness;

#define LORAC_FUZZ_ENTRY(name) {#name, lorac_fuzz_##name},
static const harness g_harness[] = {LORAC_FUZZ_HARNESSES(LORAC_FUZZ_ENTRY)};
#undef LORAC_FUZZ_ENTRY

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Replay every regular file in dir through fn, in name order; returns the count. */
static int replay(const char *dir, const char *name, int (*fn)(const uint8_t *, size_t)) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *files[4096];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < 4096;)
        if (e->d_name[0] != '.' && strcmp(e->d_name, "README.md") != 0) files[n++] = strdup(e->d_name);
    closedir(d);
    qsort(files, (size_t)n, sizeof *files, cmp_str);
    int done = 0;
    for (int i = 0; i < n; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            free(files[i]);
            continue;
        }
        char *data = NULL;
        size_t len = 0;
        lorac_status st = lorac_read_file(path, (size_t)64 << 20, &data, &len);
        CHECK(st == LORAC_OK, "cannot read %s: %s", path, lorac_last_error());
        if (st == LORAC_OK) {
            printf("test_fuzz_regressions: %-15s %s (%zu bytes)\n", name, files[i], len);
            fflush(stdout);
            CHECK(fn((const uint8_t *)data, len) == 0, "%s", path);
            done++;
        }
        free(data);
        free(files[i]);
    }
    return done;
}

int main(void) {
    int total = 0;
    for (size_t h = 0; h < sizeof g_harness / sizeof g_harness[0]; h++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", test_src_path("tests/fuzz-regressions"));
        size_t k = strlen(dir);
        snprintf(dir + k, sizeof dir - k, "/%s", g_harness[h].name);
        total += replay(dir, g_harness[h].name, g_harness[h].fn);
    }
    printf("test_fuzz_regressions: %d inputs replayed through %zu harnesses\n", total,
           sizeof g_harness / sizeof g_harness[0]);
    CHECK(total >= 0, "replayed");
    return test_summary("test_fuzz_regressions");
}
