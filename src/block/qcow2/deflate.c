/*
 * Raw deflate for qcow2 clusters with a 4 KiB window (see deflate.h).
 *
 * The parse is zlib's level 6 (hash chains over 3-byte strings, lazy evaluation with its
 * good/lazy/nice/chain limits), so the matches are about as good as QEMU's; the speed comes
 * from the whole cluster being in memory (no sliding window to refill), eight-byte match
 * comparisons, a small hash table, a 64-bit bit buffer, and one dynamic Huffman block per 32K
 * symbols, like zlib's memLevel 9.
 */
#include "block/qcow2/deflate.h"

#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define WSIZE		 4096 /* the farthest a match may reach back */
#define MIN_MATCH	 3
#define MAX_MATCH	 258
#define HASH_BITS	 13 /* 8K chain heads for a 4K window: the table stays in cache */
#define NIL		 (-1)
#define WSIZE_DIST_CODES 24 /* distance codes 0-23 reach back at most 4096 bytes */

/* zlib's level 6 (its configuration table: good 8, lazy 16, nice 128, chain 128). With the
 * window 7% wider than zlib's (4096 bytes against its 3834) the output comes out a little
 * smaller than zlib's on text and binaries (bench/convert.sh checks the sizes against
 * qemu-img's); a chain of 96 or 64 saved 4-7% of the time for 0.007% or 0.12% more output. */
#define GOOD_LEN  8
#define MAX_LAZY  16
#define NICE_LEN  128
#define MAX_CHAIN 128

#define BLOCK_SYMS 32767
#define LITLEN_N   286
#define DIST_N	   30
#define CL_N	   19

struct dfl {
	int32_t head[1 << HASH_BITS];
	int32_t prev[WSIZE];
	uint32_t syms[BLOCK_SYMS]; /* literal byte, or MATCH | (len - 3) << 16 | dist */
};

#define MATCH (1u << 31)

struct dfl *dfl_new(void)
{
	return malloc(sizeof(struct dfl));
}

void dfl_free(struct dfl *d)
{
	free(d);
}

/* ---- static tables ---- */

static const uint8_t len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
				      2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint16_t len_base[29] = {3,  4,  5,  6,   7,   8,	 9,   10,  11, 13,
				      15, 17, 19, 23,  27,  31,	 35,  43,  51, 59,
				      67, 83, 99, 115, 131, 163, 195, 227, 258};
static const uint8_t dist_extra[DIST_N] = {0, 0, 0, 0, 1, 1, 2, 2,  3,	3,  4,	4,  5,	5,  6,
					   6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
static const uint16_t dist_base[DIST_N] = {
    1,	 2,   3,   4,	5,   7,	   9,	 13,   17,   25,   33,	 49,   65,    97,    129,
    193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const uint8_t cl_order[CL_N] = {16, 17, 18, 0, 8,  7, 9,	 6, 10, 5,
				       11, 4,  12, 3, 13, 2, 14, 1, 15};

static uint8_t len_code[256];	/* len - 3 -> length code - 257 */
static uint8_t dist_code[4096]; /* dist - 1 -> distance code */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void tables_init(void)
{
	for (int c = 0; c < 28; c++)
		for (int l = len_base[c]; l < len_base[c] + (1 << len_extra[c]); l++)
			len_code[l - 3] = (uint8_t)c;
	len_code[255] = 28;
	for (int c = 0; c < WSIZE_DIST_CODES; c++)
		for (int d = dist_base[c]; d < dist_base[c] + (1 << dist_extra[c]) && d <= 4096;
		     d++)
			dist_code[d - 1] = (uint8_t)c;
}

/* ---- bit output ---- */

struct bits {
	uint8_t *p, *end;
	uint64_t acc;
	unsigned n; /* bits in acc */
	bool overflow;
	bool far; /* a block header announced distance codes beyond the 4 KiB window */
};

/* Append len <= 32 bits of v (LSB first). */
static inline void put(struct bits *b, uint64_t v, unsigned len)
{
	b->acc |= v << b->n;
	b->n += len;
	if (b->n >= 32) {
		if (b->end - b->p >= 4) {
			uint32_t w = htole32((uint32_t)b->acc);
			memcpy(b->p, &w, 4);
			b->p += 4;
		} else {
			b->overflow = true;
		}
		b->acc >>= 32;
		b->n -= 32;
	}
}

static void flush_bytes(struct bits *b)
{
	while (b->n > 0) {
		if (b->p == b->end) {
			b->overflow = true;
			return;
		}
		*b->p++ = (uint8_t)b->acc;
		b->acc >>= 8;
		b->n = b->n > 8 ? b->n - 8 : 0;
	}
}

/* ---- Huffman codes ---- */

/* Code lengths (at most maxbits) for freq[0..n): a Huffman code, its deepest levels folded up
 * the way JPEG's Annex K.3 does when they exceed maxbits. At least two symbols get a code. */
static void build_lengths(uint32_t *freq, int n, int maxbits, uint8_t *lens)
{
	int sym[LITLEN_N], nsym = 0;
	uint32_t w[2 * LITLEN_N];
	int parent[2 * LITLEN_N];

	memset(lens, 0, (size_t)n);
	for (int i = 0; i < n; i++)
		if (freq[i])
			sym[nsym++] = i;
	for (int i = 0; nsym < 2; i++)
		if (!freq[i]) {
			freq[i] = 1;
			sym[nsym++] = i;
		}
	/* Sort by frequency (then symbol): insertion sort, n <= 286. */
	for (int i = 1; i < nsym; i++) {
		int s = sym[i], j = i;
		while (j > 0 && (freq[sym[j - 1]] > freq[s] ||
				 (freq[sym[j - 1]] == freq[s] && sym[j - 1] > s))) {
			sym[j] = sym[j - 1];
			j--;
		}
		sym[j] = s;
	}
	/* Two-queue Huffman: leaves 0..nsym-1 in order, inner nodes appended in order. */
	for (int i = 0; i < nsym; i++)
		w[i] = freq[sym[i]];
	int leaf = 0, inner = nsym, next = nsym;
	for (int k = 0; k < nsym - 1; k++) {
		int pick[2];
		for (int t = 0; t < 2; t++) {
			if (leaf < nsym && (inner >= next || w[leaf] <= w[inner]))
				pick[t] = leaf++;
			else
				pick[t] = inner++;
		}
		w[next] = w[pick[0]] + w[pick[1]];
		parent[pick[0]] = parent[pick[1]] = next;
		next++;
	}
	/* Depths: the root is next - 1; parents come after their children. */
	int depth[2 * LITLEN_N];
	int count[2 * LITLEN_N] = {0};
	depth[next - 1] = 0;
	for (int i = next - 2; i >= 0; i--)
		depth[i] = depth[parent[i]] + 1;
	int maxd = 0;
	for (int i = 0; i < nsym; i++) {
		count[depth[i]]++;
		if (depth[i] > maxd)
			maxd = depth[i];
	}
	/* Fold lengths above maxbits (JPEG K.3): keeps the code complete. */
	for (int i = maxd; i > maxbits; i--) {
		while (count[i] > 0) {
			int j = i - 2;
			while (count[j] == 0)
				j--;
			count[i] -= 2;
			count[i - 1]++;
			count[j + 1] += 2;
			count[j]--;
		}
	}
	/* The most frequent symbols (the end of sym[]) get the shortest codes. */
	int s = nsym - 1;
	for (int len = 1; len <= maxbits; len++)
		for (int c = 0; c < count[len]; c++)
			lens[sym[s--]] = (uint8_t)len;
}

/* Canonical codes, bit-reversed for LSB-first output. */
static void build_codes(const uint8_t *lens, int n, uint16_t *codes)
{
	uint16_t bl_count[16] = {0}, next[16];
	unsigned code = 0;

	for (int i = 0; i < n; i++)
		bl_count[lens[i]]++;
	bl_count[0] = 0;
	for (int b = 1; b < 16; b++) {
		code = (code + bl_count[b - 1]) << 1;
		next[b] = (uint16_t)code;
	}
	for (int i = 0; i < n; i++) {
		unsigned l = lens[i];
		if (!l)
			continue;
		unsigned c = next[l]++, r = 0;
		for (unsigned k = 0; k < l; k++)
			r |= ((c >> k) & 1) << (l - 1 - k);
		codes[i] = (uint16_t)r;
	}
}

/* ---- one block ---- */

/*
 * The block's symbols, known to fit: the bit buffer lives in locals, since every store
 * through b->p (a byte pointer, which may alias anything) would otherwise make the compiler
 * reload it from *b.
 */
static void put_symbols(struct bits *b, const uint32_t *syms, size_t nsyms, const uint8_t *ll,
			const uint16_t *lc, const uint8_t *dl, const uint16_t *dc)
{
	uint64_t acc = b->acc;
	unsigned n = b->n;
	uint8_t *p = b->p;

#define PUT(v, len)                                                                                \
	do {                                                                                       \
		acc |= (uint64_t)(v) << n;                                                         \
		n += (len);                                                                        \
		if (n >= 32) {                                                                     \
			uint32_t w_ = htole32((uint32_t)acc);                                      \
			memcpy(p, &w_, 4);                                                         \
			p += 4;                                                                    \
			acc >>= 32;                                                                \
			n -= 32;                                                                   \
		}                                                                                  \
	} while (0)
	for (size_t i = 0; i < nsyms; i++) {
		uint32_t s = syms[i];
		if (s & MATCH) {
			unsigned lx = (s >> 16) & 0xff, d = s & 0xffff;
			unsigned c = len_code[lx], dcd = dist_code[d - 1];
			/* code and extra bits in one go: at most 15 + 5 and 15 + 10 bits */
			PUT(lc[257 + c] | (uint64_t)(lx + 3 - len_base[c]) << ll[257 + c],
			    ll[257 + c] + len_extra[c]);
			PUT(dc[dcd] | (uint64_t)(d - dist_base[dcd]) << dl[dcd],
			    dl[dcd] + dist_extra[dcd]);
		} else {
			PUT(lc[s], ll[s]);
		}
	}
	PUT(lc[256], ll[256]);
#undef PUT
	b->acc = acc;
	b->n = n;
	b->p = p;
}

static void write_block(struct bits *b, const uint32_t *syms, size_t nsyms, bool last)
{
	uint32_t lf[LITLEN_N] = {0}, df[DIST_N] = {0}, cf[CL_N] = {0};
	uint8_t ll[LITLEN_N], dl[DIST_N], cl[CL_N];
	uint16_t lc[LITLEN_N], dc[DIST_N], cc[CL_N];

	for (size_t i = 0; i < nsyms; i++) {
		uint32_t s = syms[i];
		if (s & MATCH) {
			lf[257 + len_code[(s >> 16) & 0xff]]++;
			df[dist_code[(s & 0xffff) - 1]]++;
		} else {
			lf[s]++;
		}
	}
	lf[256] = 1;
	/* build_lengths may give unused symbols a count of one: size the block on the real ones */
	uint32_t lf_used[LITLEN_N], df_used[DIST_N];
	memcpy(lf_used, lf, sizeof(lf));
	memcpy(df_used, df, sizeof(df));
	build_lengths(lf, LITLEN_N, 15, ll);
	build_lengths(df, DIST_N, 15, dl);
	int hlit = LITLEN_N, hdist = DIST_N;
	while (hlit > 257 && !ll[hlit - 1])
		hlit--;
	while (hdist > 1 && !dl[hdist - 1])
		hdist--;
	/* Codes 24-29 are distances past 4096, which QEMU's reader refuses: the stream must not
	 * even declare them (compress.c's check relies on it). */
	if (hdist > WSIZE_DIST_CODES) {
		b->far = true;
		return;
	}

	/* The code lengths of both alphabets, run-length coded (16: repeat the previous 3-6
	 * times, 17: 3-10 zeros, 18: 11-138 zeros). Each entry: symbol | extra << 8. */
	uint8_t all[LITLEN_N + DIST_N];
	uint16_t rle[LITLEN_N + DIST_N];
	int nall = 0, nrle = 0;
	memcpy(all, ll, (size_t)hlit);
	memcpy(all + hlit, dl, (size_t)hdist);
	nall = hlit + hdist;
	for (int i = 0; i < nall;) {
		int v = all[i], run = 1;
		while (i + run < nall && all[i + run] == v)
			run++;
		i += run;
		if (v == 0) {
			while (run >= 11) {
				int r = run > 138 ? 138 : run;
				rle[nrle++] = (uint16_t)(18 | (r - 11) << 8);
				run -= r;
			}
			if (run >= 3) {
				rle[nrle++] = (uint16_t)(17 | (run - 3) << 8);
				run = 0;
			}
		} else {
			rle[nrle++] = (uint16_t)v;
			run--;
			while (run >= 3) {
				int r = run > 6 ? 6 : run;
				rle[nrle++] = (uint16_t)(16 | (r - 3) << 8);
				run -= r;
			}
		}
		while (run-- > 0)
			rle[nrle++] = (uint16_t)v;
	}
	for (int i = 0; i < nrle; i++)
		cf[rle[i] & 0xff]++;
	build_lengths(cf, CL_N, 7, cl);
	int hclen = CL_N;
	while (hclen > 4 && !cl[cl_order[hclen - 1]])
		hclen--;
	build_codes(ll, LITLEN_N, lc);
	build_codes(dl, DIST_N, dc);
	build_codes(cl, CL_N, cc);

	put(b, last ? 1 : 0, 1);
	put(b, 2, 2); /* dynamic Huffman */
	put(b, (uint32_t)(hlit - 257), 5);
	put(b, (uint32_t)(hdist - 1), 5);
	put(b, (uint32_t)(hclen - 4), 4);
	for (int i = 0; i < hclen; i++)
		put(b, cl[cl_order[i]], 3);
	for (int i = 0; i < nrle; i++) {
		int s = rle[i] & 0xff, x = rle[i] >> 8;
		put(b, cc[s], cl[s]);
		if (s == 16)
			put(b, (uint32_t)x, 2);
		else if (s == 17)
			put(b, (uint32_t)x, 3);
		else if (s == 18)
			put(b, (uint32_t)x, 7);
	}
	if (b->overflow)
		return;
	/* The symbols' exact size is known from the frequencies: a block that cannot fit is an
	 * overflow before any of it is written, and one that fits is written without a bounds
	 * check per symbol. */
	uint64_t bits = (uint64_t)ll[256];
	for (int i = 0; i < 256; i++)
		bits += (uint64_t)lf_used[i] * ll[i];
	for (int c = 0; c < 29; c++)
		bits += (uint64_t)lf_used[257 + c] * (ll[257 + c] + len_extra[c]);
	for (int c = 0; c < DIST_N; c++)
		bits += (uint64_t)df_used[c] * (dl[c] + dist_extra[c]);
	if (b->n + bits > (uint64_t)(b->end - b->p) * 8) {
		b->overflow = true;
		return;
	}
	put_symbols(b, syms, nsyms, ll, lc, dl, dc);
}

/* ---- parse ---- */

static inline uint32_t hash3(const uint8_t *p)
{
	uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
	return (v * 2654435761u) >> (32 - HASH_BITS);
}

/* hash3 of p, reading 4 bytes (p[3] must exist) */
static inline uint32_t hash3_4(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return (le32toh(v) & 0xffffff) * 2654435761u >> (32 - HASH_BITS);
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint16_t load16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

/* Bytes a and b have in common, at most max. */
static inline unsigned common(const uint8_t *a, const uint8_t *b, unsigned max)
{
	unsigned n = 0;

	while (n + 8 <= max) {
		uint64_t x = load64(a + n) ^ load64(b + n);
		if (x)
			return n + (unsigned)(__builtin_ctzll(x) >> 3);
		n += 8;
	}
	while (n < max && a[n] == b[n])
		n++;
	return n;
}

/* zlib's longest_match: the longest match for src+p that beats prev_len (0: none does),
 * following the chain from cand back at most WSIZE bytes. */
static unsigned longest(struct dfl *d, const uint8_t *src, size_t len, int32_t p, int32_t cand,
			unsigned prev_len, unsigned *dist)
{
	unsigned chain = prev_len >= GOOD_LEN ? MAX_CHAIN >> 2 : MAX_CHAIN;
	size_t left = len - (size_t)p;
	unsigned max = left < MAX_MATCH ? (unsigned)left : MAX_MATCH;
	unsigned best = prev_len, nice = NICE_LEN < max ? NICE_LEN : max;
	int32_t limit = p - WSIZE;
	const uint8_t *s = src + p;

	if (best >= max)
		return 0;
	uint16_t start2 = load16(s), end2 = load16(s + best - 1);
	while (cand >= limit && cand >= 0) {
		const uint8_t *m = src + cand;
		/* zlib's quick rejection: the two bytes where a longer match must end, and the
		 * first two, as one 16-bit compare each */
		if (load16(m + best - 1) == end2 && load16(m) == start2) {
			unsigned l = common(m, s, max);
			if (l > best) {
				best = l;
				*dist = (unsigned)(p - cand);
				if (l >= nice)
					break;
				end2 = load16(s + best - 1); /* best < nice <= max: inside src */
			}
		}
		if (--chain == 0)
			break;
		cand = d->prev[cand & (WSIZE - 1)];
	}
	return best > prev_len ? best : 0;
}

static inline int32_t insert(struct dfl *d, const uint8_t *src, int32_t p, int32_t n)
{
	uint32_t h = p + 4 <= n ? hash3_4(src + p) : hash3(src + p);
	int32_t old = d->head[h];
	d->prev[p & (WSIZE - 1)] = old;
	d->head[h] = p;
	return old;
}

int64_t dfl_compress(struct dfl *d, uint8_t *dst, size_t cap, const uint8_t *src, size_t len)
{
	struct bits b = {.p = dst, .end = dst + cap};
	size_t nsyms = 0;

	if (!d)
		return -ENOMEM;
	if (len > (1u << 30))
		return -ENOSPC;
	pthread_once(&tables_once, tables_init);
	memset(d->head, 0xff, sizeof(d->head));

	int32_t n = (int32_t)len, p = 0;
	unsigned prev_len = MIN_MATCH - 1, prev_dist = 0;
	bool avail = false;
	while (p < n) {
		unsigned mlen = MIN_MATCH - 1, mdist = 0;
		if (p + MIN_MATCH <= n) {
			int32_t cand = insert(d, src, p, n);
			if (cand != NIL && prev_len < MAX_LAZY && p - cand <= WSIZE) {
				unsigned l = longest(d, src, len, p, cand, prev_len, &mdist);
				if (l)
					mlen = l;
			}
		}
		if (prev_len >= MIN_MATCH && mlen <= prev_len) {
			/* Emit the previous position's match; insert the strings it covers. */
			d->syms[nsyms++] = MATCH | (prev_len - MIN_MATCH) << 16 | prev_dist;
			int32_t end = p - 1 + (int32_t)prev_len;
			int32_t stop = end < n - MIN_MATCH + 1 ? end : n - MIN_MATCH + 1;
			for (int32_t q = p + 1; q < stop; q++)
				insert(d, src, q, n);
			p = end;
			avail = false;
			prev_len = MIN_MATCH - 1;
		} else {
			if (avail)
				d->syms[nsyms++] = src[p - 1];
			avail = true;
			prev_len = mlen;
			prev_dist = mdist;
			p++;
		}
		if (nsyms >= BLOCK_SYMS - 2) {
			write_block(&b, d->syms, nsyms, false);
			nsyms = 0;
			if (b.far)
				return -EPROTO;
			if (b.overflow)
				return -ENOSPC;
		}
	}
	if (avail)
		d->syms[nsyms++] = src[n - 1];
	write_block(&b, d->syms, nsyms, true);
	flush_bytes(&b);
	if (b.far)
		return -EPROTO;
	if (b.overflow)
		return -ENOSPC;
	return b.p - dst;
}
