#define _GNU_SOURCE /* memmem */
/* harness_common.c - temporary files and multi-file inputs for the fuzz
 * harnesses (see harness.h). */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 64

static char g_dir[256];
static char *g_files[MAX_FILES]; /* names relative to g_dir, written since the last reset */
static int g_nfiles;
static char *g_subdirs[MAX_FILES];
static int g_nsubdirs;

static void cleanup(void) {
    fuzz_reset();
    for (int i = g_nsubdirs - 1; i >= 0; i--) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", g_dir, g_subdirs[i]);
        rmdir(p);
        free(g_subdirs[i]);
    }
    g_nsubdirs = 0;
    if (g_dir[0]) rmdir(g_dir);
}

static const char *dir(void) {
    if (g_dir[0]) return g_dir;
    /* $LORAC_FUZZ_TMP (scripts/fuzz sets it, and removes it after a run that
     * crashed, when atexit never ran), else /dev/shm (no disk I/O per
     * input), else $TMPDIR or /tmp */
    struct stat sb;
    const char *base = getenv("LORAC_FUZZ_TMP");
    if (base && *base)
        mkdir(base, 0700);
    else if (stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0)
        base = "/dev/shm";
    else
        base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/lorac-fuzz-XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "fuzz: cannot create a temporary directory %s: %s\n", g_dir, strerror(errno));
        abort();
    }
    atexit(cleanup);
    return g_dir;
}

static const char *slot(void) {
    static char buf[8][700];
    static int k;
    return buf[k++ % 8];
}

const char *fuzz_path(const char *sub) {
    char *p = (char *)slot();
    if (sub && *sub)
        snprintf(p, 700, "%s/%s", dir(), sub);
    else
        snprintf(p, 700, "%s", dir());
    return p;
}

void fuzz_reset(void) {
    for (int i = 0; i < g_nfiles; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", g_dir, g_files[i]);
        unlink(p);
        free(g_files[i]);
    }
    g_nfiles = 0;
}

const char *fuzz_write(const char *name, const void *data, size_t n) {
    const char *slash = strchr(name, '/');
    if (slash) { /* one level of subdirectory */
        char sub[256];
        snprintf(sub, sizeof sub, "%.*s", (int)(slash - name), name);
        int known = 0;
        for (int i = 0; i < g_nsubdirs && !known; i++) known = !strcmp(g_subdirs[i], sub);
        if (!known) {
            if (mkdir(fuzz_path(sub), 0700) != 0 && errno != EEXIST) {
                fprintf(stderr, "fuzz: mkdir %s: %s\n", fuzz_path(sub), strerror(errno));
                abort();
            }
            if (g_nsubdirs < MAX_FILES) g_subdirs[g_nsubdirs++] = strdup(sub);
        }
    }
    const char *path = fuzz_path(name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
    int known = 0;
    for (int i = 0; i < g_nfiles && !known; i++) known = !strcmp(g_files[i], name);
    if (!known) {
        if (g_nfiles == MAX_FILES) {
            fprintf(stderr, "fuzz: more than %d files in one input\n", MAX_FILES);
            abort();
        }
        g_files[g_nfiles++] = strdup(name);
    }
    return path;
}

int fuzz_split(const uint8_t *data, size_t size, fuzz_part *parts, int max) {
    const size_t k = strlen(LORAC_FUZZ_SEP);
    int n = 0;
    const uint8_t *p = data, *end = data + size;
    while (n < max - 1) {
        const uint8_t *hit = size >= k ? memmem(p, (size_t)(end - p), LORAC_FUZZ_SEP, k) : NULL;
        if (!hit) break;
        parts[n++] = (fuzz_part){p, (size_t)(hit - p)};
        p = hit + k;
    }
    parts[n++] = (fuzz_part){p, (size_t)(end - p)};
    return n;
}

const char *fuzz_fixture(const char *rel) {
    char *p = (char *)slot();
    const char *src = getenv("LORAC_SRC");
    if (src && *src) {
        snprintf(p, 700, "%s/tests/fixtures/%s", src, rel);
        return p;
    }
    /* this file is <src>/fuzz/harness_common.c */
    const char *f = __FILE__, *cut = strstr(f, "fuzz/harness_common.c");
    int len = cut ? (int)(cut - f) : 0;
    snprintf(p, 700, "%.*stests/fixtures/%s", len, f, rel);
    if (len == 0) snprintf(p, 700, "tests/fixtures/%s", rel);
    return p;
}
