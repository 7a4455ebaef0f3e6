/* tok_unicode.c - the UTF-8 and Unicode rules the tokenizers rely on.
 *
 * Categories come from libutf8proc (Debian: libutf8proc-dev), so the tables
 * follow a real Unicode release instead of a hand-written subset. */
#include <utf8proc.h>

#include "io/tok_internal.h"

/* Well-formed UTF-8 (Unicode 15, table 3-7): the lead byte fixes the length
 * and the range of the second byte; later bytes are 80..BF.
 *   00..7F                      1 byte
 *   C2..DF  80..BF              2 bytes
 *   E0      A0..BF  80..BF      (no overlongs)
 *   E1..EC  80..BF  80..BF
 *   ED      80..9F  80..BF      (no surrogates)
 *   EE..EF  80..BF  80..BF
 *   F0      90..BF  80..BF x2   (no overlongs)
 *   F1..F3  80..BF  80..BF x2
 *   F4      80..8F  80..BF x2   (nothing past U+10FFFF)
 * An ill-formed sequence is replaced by one U+FFFD per "maximal subpart": the
 * longest prefix that could still have started a valid character, or the
 * single offending byte. */
size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp, size_t *bad) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else { /* 80..C1, F5..FF never start a character */
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < need; i++) {
        if (i >= n) break;
        unsigned b = s[i];
        unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h) break;
        v = (v << 6) | (b & 0x3F);
    }
    if (i < need) {
        *bad = i;
        return 0;
    }
    *cp = v;
    return need;
}

size_t tok_utf8_len_valid(const char *s, size_t n, uint32_t *cp) {
    size_t bad = 1;
    size_t k = tok_utf8_decode((const unsigned char *)s, n, cp, &bad);
    if (k) return k;
    *cp = 0xFFFD; /* not reached for sanitized text; keeps callers moving */
    return bad;
}

size_t tok_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

lorac_status tok_utf8_sanitize(const char *s, size_t n, tok_buf *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* s[run..i) is valid and not yet copied */
    while (i < n) {
        uint32_t cp;
        size_t bad = 1;
        size_t k = u[i] < 0x80 ? 1 : tok_utf8_decode(u + i, n - i, &cp, &bad);
        if (k) {
            i += k;
            continue;
        }
        LORAC_TRY(tok_buf_put(out, s + run, i - run));
        LORAC_TRY(tok_buf_put(out, "\xEF\xBF\xBD", 3));
        i += bad;
        run = i;
    }
    return tok_buf_put(out, s + run, n - run);
}

lorac_status tok_check_utf8(const char *path, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t bad, k = u[i] < 0x80 ? 1 : tok_utf8_decode(u + i, n - i, &cp, &bad);
        if (!k) {
            int line = 1;
            for (size_t j = 0; j < i; j++) line += s[j] == '\n';
            return lorac_fail(LORAC_ERR_FORMAT, "%s:%d: invalid UTF-8 byte 0x%02x at byte %zu; hint: tokenizer files "
                              "are UTF-8 text, is this file corrupt?", path, line, u[i], i);
        }
        i += k;
    }
    return LORAC_OK;
}

int tok_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t bad;
        size_t k = tok_utf8_decode(u + i, n - i, &cp, &bad);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

int tok_is_letter(uint32_t cp) {
    if (cp < 0x80) return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

int tok_is_number(uint32_t cp) {
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

int tok_is_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    if (cp == 0x85) return 1;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

/* bytes_to_unicode() from GPT-2's encoder.py: the bytes '!'..'~', '¡'..'¬'
 * and '®'..'ÿ' keep their Latin-1 code point; the other 68 bytes take
 * U+0100, U+0101, ... in increasing byte order, so every byte gets a visible,
 * non-space character. Those 68 are 00..20 (33 bytes), 7F..A0 (34) and AD. */
uint32_t tok_byte_to_cp(unsigned b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    if (b == 0xAD) return 0x100 + 67;
    return b;
}

int tok_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return (cp <= 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) ? -1 : (int)cp;
    uint32_t k = cp - 0x100;
    if (k <= 32) return (int)k;
    if (k <= 66) return (int)(0x7F + (k - 33));
    if (k == 67) return 0xAD;
    return -1;
}
