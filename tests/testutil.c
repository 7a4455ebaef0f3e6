#define _GNU_SOURCE
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

int g_test_pass, g_test_fail;

int test_close(const char *what, const float *a, const float *b, size_t n, double rtol, double atol) {
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double tol = atol + rtol * fabs((double)b[i]);
        double ratio = d / tol;
        if (!(ratio <= worst)) { /* also catches NaN */
            worst = ratio;
            wi = i;
            if (isnan(ratio)) break;
        }
    }
    int ok = worst <= 1.0;
    if (ok) {
        g_test_pass++;
    } else {
        g_test_fail++;
        fprintf(stderr, "FAIL %s: element %zu: got %.8g want %.8g (rtol %g atol %g)\n", what, wi, (double)a[wi],
                (double)b[wi], rtol, atol);
    }
    return ok;
}

static const char *join(const char *env, const char *fallback, const char *rel) {
    static char buf[8][4096];
    static int k;
    const char *root = getenv(env);
    if (!root || !*root) root = fallback;
    char *out = buf[k++ % 8];
    snprintf(out, 4096, "%s/%s", root, rel);
    return out;
}

const char *test_data_path(const char *rel) { return join("LORAC_DATA", "../shared/data", rel); }
const char *test_cache_path(const char *rel) { return join("LORAC_CACHE", ".cache", rel); }
const char *test_src_path(const char *rel) { return join("LORAC_SRC", ".", rel); }

const char *test_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/lorac_test_XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

int test_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, g_test_pass, g_test_fail);
    return g_test_fail ? 1 : 0;
}
