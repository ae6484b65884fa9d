/* SPDX-License-Identifier: BSD-3-Clause */
/* stm: writes the seed corpus of the wire-decoder fuzzer.
 *
 *   make_wire_seeds DIR
 *
 * writes into DIR one file per frame type, built with the real encoders so
 * the seeds are valid frames (DATA and ZERO address the 1 MiB image that
 * fuzz_wire_decode.c also uses), a few frames at the edges of their limits,
 * and a whole session (HELLO, a pass of DATA and ZERO, SYNC, COMMIT,
 * OUTCOME) so
 * that the fuzzer starts from streams of several frames.  The group seeds
 * (HELLO with a disk table, DATA and ZERO for disk 1, EXPORT, and a group
 * session) use two disks: "root" of 1 MiB and "data-1" of 512 KiB, the
 * table fuzz_wire_decode.c also decodes with.  The DATA_ZSTD seeds hold
 * real zstd frames (proto/zstd_frame.c) of 4 KiB of text: a valid one,
 * one whose length lies, a corrupt one, a truncated one, and a session
 * whose HELLO offers WIRE_FEATURE_ZSTD.  The files are
 * kept in the tree (tests/fuzz/corpus/wire/); this program only needs to
 * run again when the wire format changes ("make fuzz-seeds").
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include "zstd_frame.h"

#define SEED_IMAGE_SIZE (1024u * 1024)

/* A frame under construction: room for the largest seed. */
struct seed {
  uint8_t bytes[WIRE_ENCODE_TEXT_MAX + 8192];
  size_t len;
};

static const char *dir;

static void
write_seed (const char *name, const struct seed *s)
{
  char path[4096];
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", dir, name);
  fp = fopen (path, "wb");
  if (fp == NULL || fwrite (s->bytes, 1, s->len, fp) != s->len ||
      fclose (fp) != 0) {
    perror (path);
    exit (EXIT_FAILURE);
  }
}

/* Append a DATA frame of len bytes of a recognisable pattern. */
static void
add_data (struct seed *s, uint64_t offset, uint32_t len)
{
  uint32_t i;

  s->len += wire_encode_data_header (s->bytes + s->len, offset, len);
  for (i = 0; i < len; i++)
    s->bytes[s->len++] = (uint8_t) (offset + i);
}

static void
add_hello (struct seed *s)
{
  struct wire_hello h;

  memset (&h, 0, sizeof h);
  memcpy (h.migration_id, "0123456789abcdef", WIRE_MIGRATION_ID_LEN);
  h.image_size = SEED_IMAGE_SIZE;
  h.block_size = 65536;
  h.features = 0;
  s->len += wire_encode_hello (s->bytes + s->len, &h);
}

/* Write one seed, built by expr into the local seed s. */
#define SEED(name, expr) \
  do { s.len = 0; expr; write_seed (name, &s); } while (0)

/* The two-disk HELLO of the group seeds. */
static void
add_group_hello (struct seed *s)
{
  struct wire_hello h;

  memset (&h, 0, sizeof h);
  memcpy (h.migration_id, "0123456789abcdef", WIRE_MIGRATION_ID_LEN);
  h.image_size = SEED_IMAGE_SIZE;
  h.block_size = 65536;
  h.features = WIRE_FEATURE_DISKS;
  h.ndisks = 2;
  h.disks[0] = (struct wire_hello_disk) { SEED_IMAGE_SIZE, 65536, 4, "root" };
  h.disks[1] = (struct wire_hello_disk) { SEED_IMAGE_SIZE / 2, 4096, 6, "data-1" };
  s->len += wire_encode_hello (s->bytes + s->len, &h);
}

/* DATA for disk 1 of the group seeds. */
static void
add_disk_data (struct seed *s, uint64_t offset, uint32_t len)
{
  uint32_t i;

  s->len += wire_encode_disk_data_header (s->bytes + s->len, 1, offset, len);
  for (i = 0; i < len; i++)
    s->bytes[s->len++] = (uint8_t) (offset + i);
}

/* Append a DATA_ZSTD frame of 4 KiB of text at offset, its length
 * announced as length (a lie unless 4096), its frame damaged by how:
 * 0 intact, 1 a byte in every 16 flipped, 2 cut short by 5 bytes. */
static void
add_data_zstd (struct seed *s, uint64_t offset, uint32_t length, int how)
{
  static struct zstd_deflater *z;
  uint8_t text[4096];
  const uint8_t *frame;
  size_t flen, i;

  for (i = 0; i < sizeof text; i++)
    text[i] = (uint8_t) "stm block migration\n"[i % 20];
  if (z == NULL && (z = zstd_deflater_new (ZSTD_FRAME_DEFAULT_LEVEL)) == NULL) {
    perror ("zstd_deflater_new");
    exit (EXIT_FAILURE);
  }
  flen = zstd_deflate (z, text, sizeof text, &frame);
  if (flen == 0 || flen > 1024) {
    fprintf (stderr, "make_wire_seeds: 4 KiB of text did not compress\n");
    exit (EXIT_FAILURE);
  }
  if (how == 2)
    flen -= 5;
  s->len += wire_encode_data_zstd_header (s->bytes + s->len, 0, offset, length,
                                          (uint32_t) flen);
  memcpy (s->bytes + s->len, frame, flen);
  if (how == 1)
    for (i = 8; i < flen; i += 16)
      s->bytes[s->len + i] ^= 0x5a;
  s->len += flen;
}

/* The seeds of DATA_ZSTD. */
static void
write_zstd_seeds (void)
{
  struct seed s;
  struct wire_hello h;

  SEED ("data-zstd", add_data_zstd (&s, 8192, 4096, 0));
  SEED ("data-zstd-end", add_data_zstd (&s, SEED_IMAGE_SIZE - 4096, 4096, 0));
  SEED ("data-zstd-length-lies", add_data_zstd (&s, 8192, 4000, 0));
  SEED ("data-zstd-corrupt", add_data_zstd (&s, 8192, 4096, 1));
  SEED ("data-zstd-truncated", add_data_zstd (&s, 8192, 4096, 2));

  memset (&h, 0, sizeof h);
  memcpy (h.migration_id, "0123456789abcdef", WIRE_MIGRATION_ID_LEN);
  h.image_size = SEED_IMAGE_SIZE;
  h.block_size = 65536;
  h.features = WIRE_FEATURE_EXPORT | WIRE_FEATURE_ZSTD;
  s.len = wire_encode_hello (s.bytes, &h);
  s.len += wire_encode_pass_begin (s.bytes + s.len, 1, SEED_IMAGE_SIZE);
  add_data_zstd (&s, 0, 4096, 0);
  add_data (&s, 4096, 64);
  add_data_zstd (&s, 65536, 4096, 0);
  s.len += wire_encode_sync (s.bytes + s.len, 1);
  s.len += wire_encode_pass_end (s.bytes + s.len, 1);
  write_seed ("session-zstd", &s);
}

/* HASHES for [offset, offset+length) of disk 0 in units of unit, its
 * hashes a pattern. */
static void
add_hashes (struct seed *s, uint64_t offset, uint32_t length, uint32_t unit)
{
  uint32_t n = wire_hash_count (length, unit) * WIRE_HASH_LEN;

  s->len += wire_encode_hashes_header (s->bytes + s->len, 0, offset, length, unit);
  for (uint32_t i = 0; i < n; i++)
    s->bytes[s->len++] = (uint8_t) (i * 31);
}

/* The seeds of hash comparison: the key, a request, an answer, and a
 * comparing session. */
static void
write_hash_seeds (void)
{
  static const uint8_t key[WIRE_HASH_KEY_LEN] = "0123456789abcdef";
  struct seed s;
  struct wire_hello h;

  SEED ("hash-key", s.len = wire_encode_hash_key (s.bytes, key));
  SEED ("hash-req", s.len = wire_encode_hash_req (s.bytes, 0, 0, 1u << 20, 65536));
  SEED ("hash-req-end",
        s.len = wire_encode_hash_req (s.bytes, 0, SEED_IMAGE_SIZE - 5000, 5000, 4096));
  SEED ("hashes", add_hashes (&s, 0, 1u << 20, 65536));
  SEED ("hashes-short-unit", add_hashes (&s, 8192, 3 * 4096 + 100, 4096));

  memset (&h, 0, sizeof h);
  memcpy (h.migration_id, "0123456789abcdef", WIRE_MIGRATION_ID_LEN);
  h.image_size = SEED_IMAGE_SIZE;
  h.block_size = 65536;
  h.features = WIRE_FEATURE_EXPORT | WIRE_FEATURE_HASH | WIRE_FEATURE_KEEP;
  s.len = wire_encode_hello (s.bytes, &h);
  s.len += wire_encode_hash_key (s.bytes + s.len, key);
  s.len += wire_encode_pass_begin (s.bytes + s.len, 1, SEED_IMAGE_SIZE);
  s.len += wire_encode_hash_req (s.bytes + s.len, 0, 0, 65536, 65536);
  add_data (&s, 0, 64);
  s.len += wire_encode_sync (s.bytes + s.len, 1);
  s.len += wire_encode_pass_end (s.bytes + s.len, 1);
  write_seed ("session-hash", &s);
}

/* The seeds of a migration of several disks. */
static void
write_group_seeds (void)
{
  struct seed s;

  SEED ("hello-disks", add_group_hello (&s));
  SEED ("data-disk1", add_disk_data (&s, SEED_IMAGE_SIZE / 2 - 512, 512));
  SEED ("zero-disk1",
        s.len = wire_encode_disk_zero (s.bytes, 1, 0, SEED_IMAGE_SIZE / 2));
  SEED ("export-disk1",
        s.len = wire_encode_export (s.bytes, 1, "nbd://127.0.0.1:10810/data-1"));

  s.len = 0;
  add_group_hello (&s);
  s.len += wire_encode_pass_begin (s.bytes + s.len, 1, SEED_IMAGE_SIZE);
  add_data (&s, 0, 64);
  add_disk_data (&s, 4096, 64);
  s.len += wire_encode_disk_zero (s.bytes + s.len, 1, 8192, 8192);
  s.len += wire_encode_sync (s.bytes + s.len, 1);
  s.len += wire_encode_pass_end (s.bytes + s.len, 1);
  s.len += wire_encode_commit (s.bytes + s.len, 2);
  s.len += wire_encode_outcome (s.bytes + s.len, 2, WIRE_OUTCOME_FLIPPED);
  write_seed ("session-disks", &s);
}

int
main (int argc, char *argv[])
{
  struct seed s;
  struct wire_hello_reply r;
  char long_text[WIRE_MAX_TEXT + 1];

  if (argc != 2) {
    fprintf (stderr, "usage: make_wire_seeds DIR\n");
    return EXIT_FAILURE;
  }
  dir = argv[1];

  SEED ("hello", add_hello (&s));
  r.mode = WIRE_MODE_NEW; r.features = 0; r.durable_seq = 0;
  SEED ("hello-reply-new", s.len = wire_encode_hello_reply (s.bytes, &r));
  r.mode = WIRE_MODE_RESUME; r.durable_seq = 42;
  SEED ("hello-reply-resume", s.len = wire_encode_hello_reply (s.bytes, &r));
  r.mode = WIRE_MODE_PREPARED;
  SEED ("hello-reply-prepared", s.len = wire_encode_hello_reply (s.bytes, &r));
  r.mode = WIRE_MODE_FINAL;
  SEED ("hello-reply-final", s.len = wire_encode_hello_reply (s.bytes, &r));
  SEED ("data-start", add_data (&s, 0, 512));
  SEED ("data-end", add_data (&s, SEED_IMAGE_SIZE - 100, 100));
  SEED ("data-one-byte", add_data (&s, 4096, 1));
  SEED ("zero", s.len = wire_encode_zero (s.bytes, 65536, 131072));
  SEED ("zero-to-end", s.len = wire_encode_zero (s.bytes, 0, SEED_IMAGE_SIZE));
  SEED ("pass-begin", s.len = wire_encode_pass_begin (s.bytes, 1, SEED_IMAGE_SIZE));
  SEED ("pass-end", s.len = wire_encode_pass_end (s.bytes, 1));
  SEED ("sync", s.len = wire_encode_sync (s.bytes, 7));
  SEED ("durable", s.len = wire_encode_durable (s.bytes, 7));
  SEED ("commit", s.len = wire_encode_commit (s.bytes, 8));
  SEED ("committed-empty", s.len = wire_encode_committed (s.bytes, ""));
  SEED ("committed-uri",
        s.len = wire_encode_committed (s.bytes, "nbd://127.0.0.1:10809/disk"));
  SEED ("error", s.len = wire_encode_error (s.bytes, WIRE_ERR_NOSPACE,
                                            "no space left on /dst.img\twrite at 4096"));
  SEED ("abort", s.len = wire_encode_abort (s.bytes, WIRE_ERR_ABORTED,
                                            "sender gave up: \xc3\xa9t\xc3\xa9"));
  memset (long_text, 'x', WIRE_MAX_TEXT);
  long_text[WIRE_MAX_TEXT] = '\0';
  SEED ("error-longest", s.len = wire_encode_error (s.bytes, 99, long_text));
  SEED ("keepalive", s.len = wire_encode_keepalive (s.bytes));
  SEED ("outcome-flipped",
        s.len = wire_encode_outcome (s.bytes, 8, WIRE_OUTCOME_FLIPPED));
  SEED ("outcome-thawed",
        s.len = wire_encode_outcome (s.bytes, 8, WIRE_OUTCOME_THAWED));
  SEED ("recorded-final",
        s.len = wire_encode_recorded (s.bytes, 8, WIRE_STATE_FINAL));
  SEED ("recorded-superseded",
        s.len = wire_encode_recorded (s.bytes, 8, WIRE_STATE_SUPERSEDED));

  /* A session as the sender writes it. */
  s.len = 0;
  add_hello (&s);
  s.len += wire_encode_pass_begin (s.bytes + s.len, 1, SEED_IMAGE_SIZE);
  add_data (&s, 0, 64);
  s.len += wire_encode_zero (s.bytes + s.len, 65536, SEED_IMAGE_SIZE - 65536);
  add_data (&s, SEED_IMAGE_SIZE - 16, 16);
  s.len += wire_encode_keepalive (s.bytes + s.len);
  s.len += wire_encode_sync (s.bytes + s.len, 1);
  s.len += wire_encode_pass_end (s.bytes + s.len, 1);
  s.len += wire_encode_commit (s.bytes + s.len, 2);
  s.len += wire_encode_outcome (s.bytes + s.len, 2, WIRE_OUTCOME_FLIPPED);
  write_seed ("session", &s);

  /* A DATA frame whose header announces more than has arrived. */
  s.len = 0;
  add_data (&s, 0, 4096);
  s.len = WIRE_HEADER_SIZE + 12 + 100;
  write_seed ("data-truncated", &s);

  write_group_seeds ();
  write_zstd_seeds ();
  write_hash_seeds ();
  return EXIT_SUCCESS;
}
