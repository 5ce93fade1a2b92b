/* Parallels image decoding (header, BAT lookup, format extension, check counts) and ploop's
 * DiskDescriptor.xml (chains, top GUID rules, refusals), on bytes built here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "block/block.h"
#include "block/parallels.h"
#include "block/ploop_xml.h"
#include "util/error.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

/* A header: v2 unless v1; data_off 0 means "computed". */
static void hdr(uint8_t *b, int version, uint32_t tracks, uint32_t bat, uint64_t sectors,
		uint32_t data_off)
{
	memset(b, 0, PRL_HEADER_SIZE);
	memcpy(b, version == 1 ? "WithoutFreeSpace" : "WithouFreSpacExt", 16);
	put32(b + 16, 2);
	put32(b + 28, tracks);
	put32(b + 32, bat);
	put64(b + 36, sectors);
	put32(b + 48, data_off);
}

static bool msg_has(const char *s)
{
	return strstr(err_msg(), s) != NULL;
}

static void test_header_good(void **state)
{
	uint8_t b[64];
	struct prl_header h;

	hdr(b, 2, 2048, 10, 20480, 2048);
	assert_true(prl_magic(b, sizeof(b)));
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "x", &h), 0);
	assert_int_equal(h.cluster, 1 << 20);
	assert_int_equal(h.bat_end, 64 + 40);
	assert_int_equal(h.data_start, 1 << 20);
	assert_int_equal(prl_entry_offset(&h, 3), 3u << 20);
	/* v1: entries in sectors, the size's upper half ignored, data after the BAT */
	hdr(b, 1, 63, 100, 6300 | (7ULL << 32), 0);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "x", &h), 0);
	assert_int_equal(h.nb_sectors, 6300);
	assert_int_equal(h.data_start, 512);
	assert_int_equal(prl_entry_offset(&h, 3), 3 * 512);
}

static void test_header_refusals(void **state)
{
	static const struct {
		int version;
		uint32_t tracks, bat;
		uint64_t sectors;
		uint32_t data_off;
		uint64_t file;
		const char *why;
	} cases[] = {
	    {2, 0, 10, 0, 0, 1 << 20, "0 sectors"},
	    {2, 3, 10, 30, 0, 1 << 20, "not a power of two"},
	    {2, 1u << 18, 1, 1, 0, 1 << 20, "more than 64 MiB"},
	    {2, 8, 0xffffffffu, 8, 0, 1ULL << 40, "256 MiB"},
	    {2, 8, 1000, 8, 0, 1000, "runs past the end"},
	    {2, 8, 10, 81, 0, 1 << 20, "needs more than"},
	    {2, 8, 1000, 8, 1, 1 << 20, "inside the BAT"},
	    {2, 8, 10, 8, 8, 40, "shorter than"},
	};
	uint8_t b[64];
	struct prl_header h;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		hdr(b, cases[i].version, cases[i].tracks, cases[i].bat, cases[i].sectors,
		    cases[i].data_off);
		assert_int_equal(prl_header_parse(b, sizeof(b), cases[i].file, "img", &h), -EINVAL);
		if (!msg_has(cases[i].why) || !msg_has("img: "))
			fail_msg("case %zu: '%s' lacks '%s'", i, err_msg(), cases[i].why);
	}
	/* v1 takes any sector count per cluster: 63 was common */
	hdr(b, 1, 63, 10, 630, 0);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "img", &h), 0);
	hdr(b, 2, 8, 10, 80, 0);
	put32(b + 16, 3);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "img", &h), -EINVAL);
	assert_true(msg_has("version 3"));
	hdr(b, 2, 8, 10, 80, 0);
	put32(b + 52, PRL_FLAG_FMT_CONVERT);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "img", &h), -EINVAL);
	hdr(b, 2, 8, 10, 80, 8);
	put64(b + 56, 1); /* extension inside the BAT */
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "img", &h), -EINVAL);
	put64(b + 56, 1ULL << 62); /* and far past the end, without overflowing */
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "img", &h), -EINVAL);
	memcpy(b, "WithoutFreeSpacX", 16);
	assert_false(prl_magic(b, sizeof(b)));
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "img", &h), -EINVAL);
}

static void test_lookup(void **state)
{
	uint8_t b[64];
	struct prl_header h;
	/* 4 KiB clusters; entries in clusters; 2 and 3 adjacent in the file, 5 elsewhere */
	uint32_t bat[8] = {0, 0, 10, 11, 0, 20, 0, 0};
	uint64_t n;

	hdr(b, 2, 8, 8, 64, 8);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "x", &h), 0);
	assert_int_equal(prl_lookup(&h, bat, 0, 1 << 20, &n), 0);
	assert_int_equal(n, 8192); /* two unmapped clusters */
	assert_int_equal(prl_lookup(&h, bat, 100, 50, &n), 0);
	assert_int_equal(n, 50);
	assert_int_equal(prl_lookup(&h, bat, 8192 + 100, 1 << 20, &n), 10 * 4096 + 100);
	assert_int_equal(n, 2 * 4096 - 100); /* 2 and 3 are contiguous; 4 is not mapped */
	assert_int_equal(prl_lookup(&h, bat, 5 * 4096, 1 << 20, &n), 20 * 4096);
	assert_int_equal(n, 4096);
	assert_int_equal(prl_lookup(&h, bat, 6 * 4096, 1 << 20, &n), 0);
	assert_int_equal(n, 1 << 20); /* unmapped up to the asked end, past the BAT */
	assert_int_equal(prl_bat_validate(&h, bat, 21 * 4096, "x"), 0);
	assert_int_equal(prl_bat_validate(&h, bat, 20 * 4096, "x"), -EINVAL);
	assert_true(msg_has("entry 5") && msg_has("past the end"));
	bat[0] = 1; /* inside the header/BAT (data starts at sector 8 = cluster 1) */
	assert_int_equal(prl_bat_validate(&h, bat, 1 << 20, "x"), 0);
	put32(b + 48, 16);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "x", &h), 0);
	assert_int_equal(prl_bat_validate(&h, bat, 1 << 20, "x"), -EINVAL);
	assert_true(msg_has("entry 0") && msg_has("inside the header"));
}

static void test_lookup_v1(void **state)
{
	uint8_t b[64];
	struct prl_header h;
	/* 63-sector clusters at sector offsets, one right after another, then a gap */
	uint32_t bat[4] = {100, 163, 300, 0};
	uint64_t n;

	hdr(b, 1, 63, 4, 250, 0);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "x", &h), 0);
	assert_int_equal(prl_lookup(&h, bat, 10, 250 * 512, &n), 100 * 512 + 10);
	assert_int_equal(n, 2 * 63 * 512 - 10);
	assert_int_equal(prl_lookup(&h, bat, 2 * 63 * 512, 100000, &n), 300 * 512);
	assert_int_equal(n, 63 * 512);
}

struct ext_img {
	struct prl_header h;
	uint8_t buf[4096];
};

static void ext_setup(struct ext_img *e)
{
	uint8_t b[64];

	hdr(b, 2, 8, 8, 64, 8);
	put64(b + 56, 8 * 3); /* cluster 3 */
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "x", &e->h), 0);
	memset(e->buf, 0, sizeof(e->buf));
	put64(e->buf, PRL_EXT_MAGIC);
}

/* A dirty bitmap feature at byte 24 with l1 entries. */
static void ext_bitmap(struct ext_img *e, const uint64_t *l1, uint32_t n)
{
	uint8_t *f = e->buf + 24;

	put64(f, PRL_EXT_DIRTY_BITMAP);
	put32(f + 16, 32 + 8 * n);
	put32(f + 24 + 28, n);
	for (uint32_t i = 0; i < n; i++)
		put64(f + 24 + 32 + 8 * i, l1[i]);
}

static void test_ext(void **state)
{
	struct ext_img e;
	struct prl_ext x;
	uint64_t l1[3] = {0, 1, 8 * 4};

	ext_setup(&e);
	ext_bitmap(&e, l1, 3);
	prl_ext_parse(&e.h, e.buf, 1 << 20, &x);
	assert_string_equal(x.bad, "");
	assert_int_equal(x.n, 2);
	assert_int_equal(x.clusters[0], 3 * 4096);
	assert_int_equal(x.clusters[1], 4 * 4096);
	assert_int_equal(x.bitmaps, 1);
	/* a bitmap cluster past the end of the file */
	prl_ext_parse(&e.h, e.buf, 4 * 4096, &x);
	assert_non_null(strstr(x.bad, "outside the data area"));
	/* an L1 table larger than its feature */
	put32(e.buf + 24 + 24 + 28, 1000);
	prl_ext_parse(&e.h, e.buf, 1 << 20, &x);
	assert_non_null(strstr(x.bad, "overruns"));
	/* a feature size past the cluster */
	put32(e.buf + 24 + 16, 5000);
	prl_ext_parse(&e.h, e.buf, 1 << 20, &x);
	assert_non_null(strstr(x.bad, "runs past"));
	/* no end marker: features fill the cluster */
	memset(e.buf + 24, 0xab, sizeof(e.buf) - 24);
	put32(e.buf + 24 + 16, 8);
	prl_ext_parse(&e.h, e.buf, 1 << 20, &x);
	assert_string_not_equal(x.bad, "");
	put64(e.buf, 0);
	prl_ext_parse(&e.h, e.buf, 1 << 20, &x);
	assert_non_null(strstr(x.bad, "magic"));
}

static void test_check(void **state)
{
	uint8_t b[64];
	struct prl_header h;
	struct prl_ext ext = {0};
	struct bdev_check_result r;
	/* clusters (4 KiB) at 1, 2, 2 (shared), 5 (after a gap), 40 (past the end) */
	uint32_t bat[8] = {1, 2, 2, 0, 5, 40, 0, 0};

	hdr(b, 2, 8, 8, 64, 8);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "x", &h), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(prl_check(&h, bat, &ext, 8 * 4096, &r), 0);
	assert_int_equal(r.allocated_clusters, 5);
	assert_int_equal(r.total_clusters, 8);
	assert_int_equal(r.corruptions, 2);	    /* shared, outside */
	assert_int_equal(r.fragmented_clusters, 2); /* 2 after 2, 40 after 5 */
	assert_int_equal(r.image_end_offset, 41 * 4096);
	assert_int_equal(r.leaks, 0);
	bdev_check_result_free(&r);

	uint32_t clean[8] = {1, 2, 0, 0, 0, 0, 0, 0};
	memset(&r, 0, sizeof(r));
	assert_int_equal(prl_check(&h, clean, &ext, 4 * 4096 + 100, &r), 0);
	assert_int_equal(r.corruptions, 0);
	assert_int_equal(r.image_end_offset, 3 * 4096);
	assert_int_equal(r.leaks, 2); /* 4196 bytes: two clusters, rounded up */
	bdev_check_result_free(&r);

	/* nothing allocated: the image ends where its data area starts */
	uint32_t none[8] = {0};
	put32(b + 44, PRL_INUSE_MAGIC);
	assert_int_equal(prl_header_parse(b, sizeof(b), 1 << 20, "x", &h), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(prl_check(&h, none, &ext, 4096, &r), 0);
	assert_int_equal(r.image_end_offset, 4096);
	assert_int_equal(r.leaks, 0);
	assert_int_equal(r.corruptions, 1); /* in use */
	bdev_check_result_free(&r);
}

static void test_check_extension(void **state)
{
	struct ext_img e;
	struct prl_ext x;
	struct bdev_check_result r;
	uint64_t l1[1] = {8 * 4};
	uint32_t bat[8] = {1, 2, 0, 0, 0, 0, 0, 0};

	ext_setup(&e);
	ext_bitmap(&e, l1, 1);
	prl_ext_parse(&e.h, e.buf, 5 * 4096, &x);
	memset(&r, 0, sizeof(r));
	assert_int_equal(prl_check(&e.h, bat, &x, 5 * 4096, &r), 0);
	assert_int_equal(r.corruptions, 0);
	assert_int_equal(r.leaks, 0); /* clusters 3 and 4 belong to the extension */
	assert_int_equal(r.image_end_offset, 5 * 4096);
	bdev_check_result_free(&r);
	bat[2] = 4; /* a guest cluster on the bitmap's cluster */
	memset(&r, 0, sizeof(r));
	assert_int_equal(prl_check(&e.h, bat, &x, 5 * 4096, &r), 0);
	assert_int_equal(r.corruptions, 1);
	assert_non_null(strstr(r.messages[0], "format extension"));
	bdev_check_result_free(&r);
}

/* --- DiskDescriptor.xml --------------------------------------------------------------- */

#define G_BASE "{11111111-1111-1111-1111-111111111111}"
#define G_MID  "{22222222-2222-2222-2222-222222222222}"

static char xml[8192];

/* A three-image descriptor; params and snaps replace the defaults when not NULL. */
static const char *desc(const char *params, const char *images, const char *snaps)
{
	snprintf(xml, sizeof(xml),
		 "<?xml version=\"1.0\"?>\n<Parallels_disk_image>\n"
		 "  <Disk_Parameters>\n    <Disk_size> 2048 </Disk_size>\n%s"
		 "  </Disk_Parameters>\n  <StorageData>\n    <Storage>\n"
		 "      <Blocksize>2048</Blocksize>\n%s    </Storage>\n  </StorageData>\n"
		 "  <Snapshots>\n%s  </Snapshots>\n</Parallels_disk_image>\n",
		 params ? params : "    <Padding>0</Padding>\n",
		 images ? images
			: "      <Image><GUID>" G_BASE "</GUID><Type>Compressed</Type>"
			  "<File>root.hdd</File></Image>\n"
			  "      <Image><GUID>" G_MID "</GUID><Type>Compressed</Type>"
			  "<File>/abs/mid</File></Image>\n"
			  "      <Image><GUID>" PLOOP_TOP_GUID "</GUID><Type>Compressed</Type>"
			  "<File>top</File></Image>\n",
		 snaps ? snaps
		       : "    <Shot><GUID>" G_MID "</GUID><ParentGUID>" G_BASE
			 "</ParentGUID></Shot>\n"
			 "    <Shot><GUID>" G_BASE "</GUID><ParentGUID>" PLOOP_NONE_GUID
			 "</ParentGUID></Shot>\n"
			 "    <Shot><GUID>" PLOOP_TOP_GUID "</GUID><ParentGUID>" G_MID
			 "</ParentGUID></Shot>\n");
	return xml;
}

static int parse(const char *text, struct ploop_desc *d)
{
	return ploop_desc_parse(text, strlen(text), "d/DiskDescriptor.xml", "d", d);
}

static void test_desc_chain(void **state)
{
	struct ploop_desc d;

	/* no <TopGUID>: ploop's fixed top GUID; the chain follows the parents */
	assert_int_equal(parse(desc(NULL, NULL, NULL), &d), 0);
	assert_int_equal(d.disk_sectors, 2048);
	assert_int_equal(d.blocksize, 2048);
	assert_int_equal(d.nchain, 3);
	assert_string_equal(d.top_guid, PLOOP_TOP_GUID);
	assert_string_equal(d.chain[0].path, "d/top");
	assert_string_equal(d.chain[1].path, "/abs/mid");
	assert_string_equal(d.chain[2].path, "d/root.hdd");
	assert_string_equal(d.chain[2].guid, G_BASE);
	assert_false(d.chain[0].plain);
	ploop_desc_free(&d);

	/* <TopGUID> names the middle: the top image is left out (another branch) */
	assert_int_equal(parse(desc(NULL, NULL,
				    "    <TopGUID>" G_MID "</TopGUID>\n"
				    "    <Shot><GUID>" G_MID "</GUID><ParentGUID>" G_BASE
				    "</ParentGUID></Shot>\n"
				    "    <Shot><GUID>" G_BASE "</GUID><ParentGUID>" PLOOP_NONE_GUID
				    "</ParentGUID></Shot>\n"),
			       &d),
			 0);
	assert_int_equal(d.nchain, 2);
	assert_string_equal(d.chain[0].guid, G_MID);
	ploop_desc_free(&d);

	/* one plain image, no shots: itself */
	assert_int_equal(parse(desc(NULL,
				    "<Image><GUID>" G_BASE "</GUID><Type>Plain</Type>"
				    "<File>root.hds</File></Image>",
				    ""),
			       &d),
			 0);
	assert_int_equal(d.nchain, 1);
	assert_true(d.chain[0].plain);
	ploop_desc_free(&d);
}

static void refused(const char *text, const char *why)
{
	struct ploop_desc d;

	assert_true(parse(text, &d) < 0);
	if (!msg_has(why) || !msg_has("d/DiskDescriptor.xml: "))
		fail_msg("'%s' lacks '%s'", err_msg(), why);
	assert_int_equal(d.nchain, 0);
}

static void test_desc_refusals(void **state)
{
	refused("<a>", "not well-formed XML (line 1");
	refused("", "too small");
	refused("<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY e \"x\">]><Parallels_disk_image/>",
		"DOCTYPE");
	refused("<Virtuozzo_disk_image/>", "no <Disk_Parameters>");
	refused("<domain/>", "root element is <domain>");
	refused(desc("<Encryption><KeyId>abc</KeyId></Encryption>", NULL, NULL), "encrypted");
	refused(desc("<Encryption><Engine>{12345678-1234-1234-1234-123456789abc}</Engine>"
		     "</Encryption>",
		     NULL, NULL),
		"encrypted");
	refused(desc("<Padding>1</Padding>", NULL, NULL), "Padding");
	refused(
	    desc(NULL, NULL,
		 "<Shot><GUID>" G_BASE "</GUID><ParentGUID>" PLOOP_TOP_GUID "</ParentGUID></Shot>"
		 "<Shot><GUID>" G_MID "</GUID><ParentGUID>" G_BASE "</ParentGUID></Shot>"
		 "<Shot><GUID>" PLOOP_TOP_GUID "</GUID><ParentGUID>" G_MID "</ParentGUID></Shot>"),
	    "loops back");
	refused(desc(NULL, NULL,
		     "<Shot><GUID>" PLOOP_TOP_GUID "</GUID><ParentGUID>"
		     "{99999999-9999-9999-9999-999999999999}</ParentGUID></Shot>"),
		"{99999999-9999-9999-9999-999999999999}, which no <Image>");
	refused(desc(NULL, NULL,
		     "<Shot><GUID>" G_BASE "</GUID><ParentGUID>" PLOOP_NONE_GUID
		     "</ParentGUID></Shot>"),
		"has no <Shot>");
	refused(desc(NULL, "<Image><GUID>x</GUID><File>f</File></Image>", ""), "not a GUID");
	refused(desc(NULL,
		     "<Image><GUID>" G_BASE "</GUID><File>f</File></Image>"
		     "<Image><GUID>" G_BASE "</GUID><File>g</File></Image>",
		     ""),
		"two images");
	refused(
	    desc(NULL, "<Image><GUID>" G_BASE "</GUID><File>f</File><Type>Qcow</Type></Image>", ""),
	    "not Compressed or Plain");
	refused(desc(NULL, "<Image><GUID>" G_BASE "</GUID><File> </File></Image>", ""),
		"empty <File>");
	refused(desc(NULL, "<Image><GUID>" G_BASE "</GUID><File><b/>f</File></Image>", ""),
		"holds markup");
	refused(desc(NULL, "", ""), "lists no <Image>");
	refused(desc(NULL,
		     "<Image><GUID>" G_BASE "</GUID><File>f</File></Image>"
		     "<Image><GUID>" G_MID "</GUID><File>g</File></Image>",
		     ""),
		"on top");
	refused(desc(NULL, NULL, "<TopGUID>" PLOOP_NONE_GUID "</TopGUID>"), "null GUID");
	snprintf(xml, sizeof(xml),
		 "<Parallels_disk_image><Disk_Parameters><Disk_size>-1"
		 "</Disk_size></Disk_Parameters></Parallels_disk_image>");
	refused(xml, "Disk_size");
	snprintf(xml, sizeof(xml),
		 "<Parallels_disk_image><Disk_Parameters><Disk_size>"
		 "36028797018963968</Disk_size></Disk_Parameters>"
		 "</Parallels_disk_image>");
	refused(xml, "Disk_size"); /* 2^55 sectors: bytes overflow */
}

static void test_desc_split_and_volume(void **state)
{
	char text[8192];
	const char *base = desc(NULL, NULL, NULL);
	const char *st = strstr(base, "    <Storage>");
	const char *end = strstr(base, "    </Storage>\n") + strlen("    </Storage>\n");

	snprintf(text, sizeof(text), "%.*s%.*s%s", (int)(end - base), base, (int)(end - st), st,
		 end);
	refused(text, "split");
	snprintf(text, sizeof(text), "%.*s<Volume><Parent>../x</Parent></Volume>%s",
		 (int)(st - base), base, st);
	refused(text, "Volume");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_good),
	    cmocka_unit_test(test_header_refusals),
	    cmocka_unit_test(test_lookup),
	    cmocka_unit_test(test_lookup_v1),
	    cmocka_unit_test(test_ext),
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_check_extension),
	    cmocka_unit_test(test_desc_chain),
	    cmocka_unit_test(test_desc_refusals),
	    cmocka_unit_test(test_desc_split_and_volume),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
