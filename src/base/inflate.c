/*
 * inflate.c - gzip (RFC 1952) and DEFLATE (RFC 1951) decompression, from the RFCs.
 *
 * Structure: a bit reader over the whole input (LSB-first, 64-bit buffer), canonical
 * Huffman tables (a 9-bit direct lookup plus a bit-by-bit canonical walk for longer
 * codes), a block loop (stored, fixed, dynamic), and a gzip member loop around it
 * (header, deflate stream, CRC32 + ISIZE trailer; more members may follow).
 *
 * Invariants (every input is hostile):
 *   - the bit reader never reads past in_size: a read that needs missing bits fails
 *     with "truncated"; bytes already in the bit buffer are handed back before a
 *     stored block and before the trailer, so the byte position is always exact;
 *   - out_len <= max_out at all times; the buffer grows geometrically up to max_out;
 *   - a back-reference distance is <= the bytes output by the current member;
 *   - Huffman tables: over-subscribed code sets are rejected; incomplete ones are
 *     accepted only as zlib does (a single code of length 1, or no distance codes at
 *     all), and decoding a bit pattern with no code fails;
 *   - every loop consumes input or output, so no input can make it hang.
 * Traps: the code-length repeat code 16 needs a previous length (and may cross from
 * the literal/length lengths into the distance lengths); literal/length symbols 286,
 * 287 and distance symbols 30, 31 exist in the fixed code but are invalid; Huffman
 * codes are stored MSB-first inside the LSB-first bit stream (hence the reversal).
 */
#include "base/inflate.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BITS 15          /* longest Huffman code */
#define MAX_LIT 288          /* literal/length alphabet incl. the two invalid symbols */
#define MAX_DIST 32          /* distance alphabet incl. the two invalid symbols */
#define FAST_BITS 9          /* direct-lookup width */
#define WINDOW 32768u        /* largest distance */

/* A canonical Huffman code. fast[] is indexed by the next FAST_BITS input bits (LSB
 * first) and holds (length << 9) | symbol, or 0 when the code is longer (or absent). */
typedef struct huffman {
    uint16_t count[MAX_BITS + 1];   /* number of codes of each length */
    uint16_t symbol[MAX_LIT];       /* symbols in canonical code order */
    uint16_t fast[1u << FAST_BITS];
} huffman;

typedef struct inflater {
    const unsigned char *in;
    size_t in_size;
    size_t pos;            /* next input byte to load into bitbuf */
    uint64_t bitbuf;
    int bitcnt;
    unsigned char *out;
    size_t out_len, out_cap, max_out;
    size_t member_start;   /* out offset where the current member's output begins */
    int member;            /* 1-based, for messages */
    huffman lit, dist;
    uint32_t crc_table[256];
    pd_error *err;
} inflater;

static const uint16_t len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,
                                      15, 17, 19, 23, 27, 31, 35, 43, 51,  59,
                                      67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t dist_base[30] = {1,    2,    3,    4,    5,    7,     9,     13,
                                       17,   25,   33,   49,   65,   97,    129,   193,
                                       257,  385,  513,  769,  1025, 1537,  2049,  3073,
                                       4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                       6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
/* order in which code-length code lengths are transmitted (RFC 1951 3.2.7) */
static const uint8_t clen_order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5,
                                       11, 4, 12, 3, 13, 2, 14, 1, 15};

/* ---- errors --------------------------------------------------------------------- */

/* Input offset of the next unread bit's byte (for messages). */
static size_t in_offset(const inflater *s) { return s->pos - (size_t)(s->bitcnt / 8); }

static pd_status fail(inflater *s, const char *what) {
    return pd_error_set(s->err, PD_ERR_FORMAT, "gzip: %s (member %d, input offset %zu)",
                        what, s->member, in_offset(s));
}

/* ---- CRC32 (IEEE 802.3, reflected polynomial 0xedb88320) --------------------------- */

static void crc32_init(uint32_t table[256]) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1u) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
}

static uint32_t crc32_update(const uint32_t table[256], uint32_t crc,
                             const unsigned char *p, size_t n) {
    crc = ~crc;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
    return ~crc;
}

/* ---- bit reader ------------------------------------------------------------------ */

static void refill(inflater *s) {
    while (s->bitcnt <= 56 && s->pos < s->in_size) {
        s->bitbuf |= (uint64_t)s->in[s->pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
}

/* Reads n <= 16 bits, LSB first. */
static pd_status get_bits(inflater *s, int n, unsigned *v) {
    if (s->bitcnt < n) {
        refill(s);
        if (s->bitcnt < n) return fail(s, "truncated deflate data");
    }
    *v = (unsigned)(s->bitbuf & ((1u << n) - 1u));
    s->bitbuf >>= n;
    s->bitcnt -= n;
    return PD_OK;
}

/* Drops the bits up to the next byte boundary and hands whole buffered bytes back to
 * the input, so that s->pos is the exact byte position. */
static void align_to_byte(inflater *s) {
    int drop = s->bitcnt & 7;
    s->bitbuf >>= drop;
    s->bitcnt -= drop;
    s->pos -= (size_t)(s->bitcnt / 8);
    s->bitbuf = 0;
    s->bitcnt = 0;
}

/* ---- Huffman tables -------------------------------------------------------------- */

static unsigned reverse_bits(unsigned code, int len) {
    unsigned r = 0;
    for (int i = 0; i < len; i++) {
        r = (r << 1) | (code & 1u);
        code >>= 1;
    }
    return r;
}

/* Builds h from n code lengths (0 = unused). Returns the number of unused code
 * points at the longest length relative to a complete code (0 = complete), or -1 if
 * the lengths are over-subscribed. */
static int build_huffman(huffman *h, const uint8_t *lengths, int n) {
    uint16_t offs[MAX_BITS + 2];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++) h->count[lengths[i]]++;
    int left = 1;
    for (int len = 1; len <= MAX_BITS; len++) {
        left <<= 1;
        left -= h->count[len];
        if (left < 0) return -1;
    }
    offs[1] = 0;
    for (int len = 1; len <= MAX_BITS; len++) offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
    for (int i = 0; i < n; i++)
        if (lengths[i]) h->symbol[offs[lengths[i]]++] = (uint16_t)i;

    /* direct lookup for codes up to FAST_BITS long */
    memset(h->fast, 0, sizeof h->fast);
    unsigned code = 0;
    int idx = 0;
    for (int len = 1; len <= MAX_BITS; len++) {
        for (int k = 0; k < h->count[len]; k++, idx++, code++) {
            if (len > FAST_BITS) continue;
            unsigned rev = reverse_bits(code, len);
            uint16_t entry = (uint16_t)((len << 9) | h->symbol[idx]);
            for (unsigned fill = rev; fill < (1u << FAST_BITS); fill += 1u << len)
                h->fast[fill] = entry;
        }
        code <<= 1;
    }
    return left;
}

/* Decodes one symbol. */
static pd_status decode_symbol(inflater *s, const huffman *h, int *sym) {
    if (s->bitcnt < MAX_BITS) refill(s);
    uint16_t e = h->fast[s->bitbuf & ((1u << FAST_BITS) - 1u)];
    if (e) {
        int len = e >> 9;
        if (len > s->bitcnt) return fail(s, "truncated deflate data");
        s->bitbuf >>= len;
        s->bitcnt -= len;
        *sym = e & 0x1ff;
        return PD_OK;
    }
    /* canonical walk: at each length, codes first .. first+count-1 have that length */
    int code = 0, first = 0, index = 0;
    uint64_t bits = s->bitbuf;
    for (int len = 1; len <= MAX_BITS; len++) {
        if (len > s->bitcnt) return fail(s, "truncated deflate data");
        code |= (int)(bits & 1u);
        bits >>= 1;
        int count = h->count[len];
        if (code - first < count) {
            s->bitbuf >>= len;
            s->bitcnt -= len;
            *sym = h->symbol[index + code - first];
            return PD_OK;
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return fail(s, "invalid Huffman code in compressed data");
}

/* ---- output ---------------------------------------------------------------------- */

/* Makes room for n more bytes, within max_out. */
static pd_status reserve(inflater *s, size_t n) {
    if (n > s->max_out - s->out_len)
        return pd_error_set(s->err, PD_ERR_FORMAT,
                            "gzip: decompressed data exceeds the limit of %zu bytes "
                            "(member %d, input offset %zu)",
                            s->max_out, s->member, in_offset(s));
    size_t need = s->out_len + n;
    if (need <= s->out_cap) return PD_OK;
    size_t cap = s->out_cap > s->max_out / 2 ? s->max_out : s->out_cap * 2;
    if (cap < need) cap = need;
    unsigned char *p = realloc(s->out, cap ? cap : 1);
    if (!p)
        return pd_error_set(s->err, PD_ERR_OOM, "gzip: out of memory growing the output to %zu bytes",
                            cap);
    s->out = p;
    s->out_cap = cap;
    return PD_OK;
}

/* ---- blocks ---------------------------------------------------------------------- */

static pd_status stored_block(inflater *s) {
    align_to_byte(s);
    if (s->in_size - s->pos < 4) return fail(s, "truncated stored block header");
    const unsigned char *p = s->in + s->pos;
    unsigned len = (unsigned)p[0] | (unsigned)p[1] << 8;
    unsigned nlen = (unsigned)p[2] | (unsigned)p[3] << 8;
    if (len != (~nlen & 0xffffu)) return fail(s, "stored block length check failed (LEN != ~NLEN)");
    s->pos += 4;
    if (s->in_size - s->pos < len) return fail(s, "truncated stored block");
    pd_status st = reserve(s, len);
    if (st != PD_OK) return st;
    memcpy(s->out + s->out_len, s->in + s->pos, len);
    s->out_len += len;
    s->pos += len;
    return PD_OK;
}

static void build_fixed(inflater *s) {
    uint8_t lengths[MAX_LIT];
    int i = 0;
    for (; i < 144; i++) lengths[i] = 8;
    for (; i < 256; i++) lengths[i] = 9;
    for (; i < 280; i++) lengths[i] = 7;
    for (; i < MAX_LIT; i++) lengths[i] = 8;
    build_huffman(&s->lit, lengths, MAX_LIT);
    for (i = 0; i < MAX_DIST; i++) lengths[i] = 5;
    build_huffman(&s->dist, lengths, MAX_DIST);
}

static pd_status read_dynamic_tables(inflater *s) {
    unsigned hlit, hdist, hclen, v;
    pd_status st;
    if ((st = get_bits(s, 5, &hlit)) != PD_OK) return st;
    if ((st = get_bits(s, 5, &hdist)) != PD_OK) return st;
    if ((st = get_bits(s, 4, &hclen)) != PD_OK) return st;
    int nlen = (int)hlit + 257, ndist = (int)hdist + 1, ncode = (int)hclen + 4;
    if (nlen > 286) return fail(s, "too many literal/length codes (HLIT > 29)");
    if (ndist > 30) return fail(s, "too many distance codes (HDIST > 29)");

    uint8_t lengths[MAX_LIT + MAX_DIST];
    memset(lengths, 0, 19);
    for (int i = 0; i < ncode; i++) {
        if ((st = get_bits(s, 3, &v)) != PD_OK) return st;
        lengths[clen_order[i]] = (uint8_t)v;
    }
    if (build_huffman(&s->lit, lengths, 19) != 0)
        return fail(s, "invalid code-length code (over-subscribed or incomplete)");

    int n = 0;
    while (n < nlen + ndist) {
        int sym;
        if ((st = decode_symbol(s, &s->lit, &sym)) != PD_OK) return st;
        if (sym < 16) {
            lengths[n++] = (uint8_t)sym;
            continue;
        }
        uint8_t rep_len = 0;
        unsigned rep;
        if (sym == 16) {
            if (n == 0) return fail(s, "code length repeat (16) with no previous length");
            rep_len = lengths[n - 1];
            if ((st = get_bits(s, 2, &v)) != PD_OK) return st;
            rep = 3 + v;
        } else if (sym == 17) {
            if ((st = get_bits(s, 3, &v)) != PD_OK) return st;
            rep = 3 + v;
        } else {
            if ((st = get_bits(s, 7, &v)) != PD_OK) return st;
            rep = 11 + v;
        }
        if ((unsigned)(nlen + ndist - n) < rep) return fail(s, "code length repeat past the end of the lengths");
        while (rep--) lengths[n++] = rep_len;
    }
    if (lengths[256] == 0) return fail(s, "no end-of-block code in dynamic block");

    /* incomplete codes: only a single code of length 1 (and, for distances, none) */
    int left = build_huffman(&s->lit, lengths, nlen);
    if (left < 0 || (left > 0 && !(nlen - s->lit.count[0] == 1 && s->lit.count[1] == 1)))
        return fail(s, "invalid literal/length code lengths (over-subscribed or incomplete)");
    left = build_huffman(&s->dist, lengths + nlen, ndist);
    int n_used = ndist - s->dist.count[0];
    if (left < 0 || (left > 0 && n_used != 0 && !(n_used == 1 && s->dist.count[1] == 1)))
        return fail(s, "invalid distance code lengths (over-subscribed or incomplete)");
    return PD_OK;
}

/* Decodes literal/length + distance symbols until end-of-block. */
static pd_status huffman_block(inflater *s) {
    pd_status st;
    for (;;) {
        int sym;
        if ((st = decode_symbol(s, &s->lit, &sym)) != PD_OK) return st;
        if (sym < 256) {
            if (s->out_len == s->out_cap && (st = reserve(s, 1)) != PD_OK) return st;
            s->out[s->out_len++] = (unsigned char)sym;
            continue;
        }
        if (sym == 256) return PD_OK;
        sym -= 257;
        if (sym >= 29) return fail(s, "invalid literal/length symbol (286 or 287)");
        unsigned extra, len, dist;
        if ((st = get_bits(s, len_extra[sym], &extra)) != PD_OK) return st;
        len = len_base[sym] + extra;
        if ((st = decode_symbol(s, &s->dist, &sym)) != PD_OK) return st;
        if (sym >= 30) return fail(s, "invalid distance symbol (30 or 31)");
        if ((st = get_bits(s, dist_extra[sym], &extra)) != PD_OK) return st;
        dist = dist_base[sym] + extra;
        if (dist > s->out_len - s->member_start)
            return fail(s, "distance too far back (before the start of the output)");
        if ((st = reserve(s, len)) != PD_OK) return st;
        unsigned char *dst = s->out + s->out_len;
        const unsigned char *src = dst - dist;
        if (dist >= len) {
            memcpy(dst, src, len);
        } else {
            for (unsigned i = 0; i < len; i++) dst[i] = src[i];   /* overlapping run */
        }
        s->out_len += len;
    }
}

static pd_status inflate_stream(inflater *s) {
    pd_status st;
    unsigned final, type;
    do {
        if ((st = get_bits(s, 1, &final)) != PD_OK) return st;
        if ((st = get_bits(s, 2, &type)) != PD_OK) return st;
        if (type == 0) {
            st = stored_block(s);
        } else if (type == 1) {
            build_fixed(s);
            st = huffman_block(s);
        } else if (type == 2) {
            st = read_dynamic_tables(s);
            if (st == PD_OK) st = huffman_block(s);
        } else {
            st = fail(s, "invalid deflate block type 3");
        }
        if (st != PD_OK) return st;
    } while (!final);
    align_to_byte(s);
    return PD_OK;
}

/* ---- gzip members ---------------------------------------------------------------- */

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Skips a zero-terminated string field at s->pos. */
static pd_status skip_zstring(inflater *s, const char *what) {
    const unsigned char *z = memchr(s->in + s->pos, 0, s->in_size - s->pos);
    if (!z) return pd_error_set(s->err, PD_ERR_FORMAT,
                                "gzip: truncated header: unterminated %s (member %d)", what, s->member);
    s->pos = (size_t)(z - s->in) + 1;
    return PD_OK;
}

static pd_status read_member_header(inflater *s) {
    size_t start = s->pos;
    const unsigned char *p = s->in + start;
    size_t avail = s->in_size - start;
    if (avail < 10 || p[0] != 0x1f || p[1] != 0x8b) {
        if (avail >= 2 && (p[0] != 0x1f || p[1] != 0x8b))
            return fail(s, "not a gzip file (bad magic bytes)");
        return fail(s, "truncated gzip header");
    }
    if (p[2] != 8) {
        return pd_error_set(s->err, PD_ERR_FORMAT,
                            "gzip: unsupported compression method %u (only 8, deflate) (member %d)",
                            p[2], s->member);
    }
    unsigned flg = p[3];
    if (flg & 0xe0u)
        return pd_error_set(s->err, PD_ERR_FORMAT,
                            "gzip: reserved header flags set (0x%02x) (member %d)", flg, s->member);
    s->pos += 10;
    pd_status st;
    if (flg & 0x04u) {   /* FEXTRA */
        if (s->in_size - s->pos < 2) return fail(s, "truncated gzip extra field");
        size_t xlen = (size_t)s->in[s->pos] | (size_t)s->in[s->pos + 1] << 8;
        s->pos += 2;
        if (s->in_size - s->pos < xlen) return fail(s, "truncated gzip extra field");
        s->pos += xlen;
    }
    if ((flg & 0x08u) && (st = skip_zstring(s, "file name")) != PD_OK) return st;     /* FNAME */
    if ((flg & 0x10u) && (st = skip_zstring(s, "comment")) != PD_OK) return st;       /* FCOMMENT */
    if (flg & 0x02u) {   /* FHCRC: low 16 bits of the CRC32 of the header so far */
        if (s->in_size - s->pos < 2) return fail(s, "truncated gzip header CRC");
        unsigned want = (unsigned)s->in[s->pos] | (unsigned)s->in[s->pos + 1] << 8;
        uint32_t got = crc32_update(s->crc_table, 0, s->in + start, s->pos - start);
        if ((got & 0xffffu) != want) return fail(s, "gzip header CRC mismatch");
        s->pos += 2;
    }
    return PD_OK;
}

static pd_status read_member(inflater *s) {
    pd_status st = read_member_header(s);
    if (st != PD_OK) return st;
    s->member_start = s->out_len;
    if ((st = inflate_stream(s)) != PD_OK) return st;
    if (s->in_size - s->pos < 8) return fail(s, "truncated gzip trailer (CRC32 and size)");
    uint32_t want_crc = le32(s->in + s->pos), want_size = le32(s->in + s->pos + 4);
    size_t n = s->out_len - s->member_start;
    uint32_t crc = crc32_update(s->crc_table, 0, s->out + s->member_start, n);
    if (crc != want_crc)
        return pd_error_set(s->err, PD_ERR_FORMAT,
                            "gzip: CRC32 mismatch (stored 0x%08x, computed 0x%08x) (member %d)",
                            (unsigned)want_crc, (unsigned)crc, s->member);
    if ((uint32_t)n != want_size)
        return pd_error_set(s->err, PD_ERR_FORMAT,
                            "gzip: size mismatch (stored %u, decoded %zu bytes) (member %d)",
                            (unsigned)want_size, n, s->member);
    s->pos += 8;
    return PD_OK;
}

pd_status pd_gunzip(const unsigned char *data, size_t size, size_t max_out,
                    unsigned char **out, size_t *out_size, pd_error *err) {
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    if (!out || !out_size || (!data && size))
        return pd_error_set(err, PD_ERR_INVALID_ARG, "gzip: NULL argument");
    if (size == 0) return pd_error_set(err, PD_ERR_FORMAT, "gzip: empty input");

    inflater *s = calloc(1, sizeof *s);
    if (!s) return pd_error_set(err, PD_ERR_OOM, "gzip: out of memory");
    s->in = data;
    s->in_size = size;
    s->max_out = max_out;
    s->err = err;
    crc32_init(s->crc_table);

    /* first guess: 4x the input (text compresses ~3x), at most max_out */
    size_t guess = size < SIZE_MAX / 4 ? size * 4 : SIZE_MAX;
    if (guess < 4096) guess = 4096;
    if (guess > max_out) guess = max_out;
    s->out = malloc(guess ? guess : 1);
    pd_status st = PD_OK;
    if (!s->out) {
        st = pd_error_set(err, PD_ERR_OOM, "gzip: out of memory (%zu bytes)", guess);
        goto fail;
    }
    s->out_cap = guess;

    for (s->member = 1;; s->member++) {
        if ((st = read_member(s)) != PD_OK) goto fail;
        if (s->pos == s->in_size) break;
        if (s->in[s->pos] == 0) {   /* zero padding after the last member is allowed */
            size_t i = s->pos;
            while (i < s->in_size && s->in[i] == 0) i++;
            if (i == s->in_size) break;
        }
        if (s->in[s->pos] != 0x1f) {
            st = pd_error_set(err, PD_ERR_FORMAT,
                              "gzip: trailing garbage after member %d (input offset %zu)",
                              s->member, s->pos);
            goto fail;
        }
    }
    *out = s->out;
    *out_size = s->out_len;
    free(s);
    return PD_OK;

fail:
    free(s->out);
    free(s);
    return st;
}
