/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the output image, a regular file or a block device.
 *
 * The writer owns the output's file descriptor for the life of the process
 * (it is opened, locked and checked at startup, so a bad --output is a
 * startup error), sizes it when a migration starts, and carries out the
 * session's writes: DATA with pwrite, ZERO by punching a hole so a sparse
 * image stays sparse (falling back to zeroing the range, then to writing
 * zeroes), and SYNC/COMMIT with fdatasync.  It also reads the output
 * back, for the hashes a sender compares its source against.
 *
 * It never makes data durable on its own: durability is the session's
 * decision, and fdatasync at SYNC and COMMIT is the only promise.  But it
 * does not leave what it wrote dirty in the page cache until then either:
 * each written range is handed to the disk as it lands, and once a window
 * of writes (8 MiB) has been written since the last wait, the writer waits
 * until the window before it has reached the disk (sync_file_range; no
 * cache flush, no metadata).  So the data stm-recv has dirty or in flight
 * stays under about two windows, an fdatasync finds little left to write,
 * and a guest whose synced writes share the destination's disk does not
 * queue behind a second's worth of the migration at every SYNC.  Where
 * sync_file_range cannot work (EINVAL, ENOSYS, ESPIPE, EOPNOTSUPP) the
 * writer silently leaves everything to fdatasync, as before.  A writeback
 * error such a wait reports is kept and returned by the next
 * image_writer_sync, since the kernel would not report it again to
 * fdatasync.
 *
 * image_writer_open reports its own errors (log_error, naming the path).
 * The other calls return -1 with errno set and report nothing: the session
 * that called them reports once, naming the peer, the output and the
 * offset, both on stderr and to the sender.
 */
#ifndef STM_RECEIVER_IMAGE_WRITER_H
#define STM_RECEIVER_IMAGE_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct image_writer;

/* Open (creating it mode 0600 if absent) and lock the output.  Refuses
 * anything but a regular file or a block device, and an output another
 * process holds locked.  NULL after log_error. */
struct image_writer *image_writer_open (const char *path);

/* Make the output ready for an image of image_size bytes.  A regular file
 * is set to exactly that size; with fresh set it is emptied first, so that
 * nothing from before survives (a new migration holds nothing); without,
 * the bytes it holds up to image_size are kept (a resumed migration, or a
 * new one whose sender compares against them).  A block
 * device must hold at least image_size bytes, else -1 with errno ENOSPC. */
int image_writer_prepare (struct image_writer *w, uint64_t image_size, bool fresh);

/* Write all of buf at offset (short writes and EINTR are retried), and
 * start its writeback; every WRITEBACK_WINDOW bytes this also waits for
 * the writeback of the window before (see above). */
int image_writer_write (struct image_writer *w, uint64_t offset,
                        const void *buf, size_t len);

/* Read len bytes at offset into buf (short reads and EINTR are
 * retried); bytes past the output's end read as zeroes.  It reads what
 * the writes above left (the page cache: nothing is deferred), and it
 * blocks like them. */
int image_writer_read (struct image_writer *w, uint64_t offset,
                       void *buf, size_t len);

/* Make [offset, offset+length) read back as zeroes. */
int image_writer_zero (struct image_writer *w, uint64_t offset, uint64_t length);

/* fdatasync the output.  Fails also (with its errno) when a writeback
 * error was reported since the last sync, even if fdatasync succeeds. */
int image_writer_sync (struct image_writer *w);

const char *image_writer_path (const struct image_writer *w);
bool image_writer_is_block_device (const struct image_writer *w);
/* The current size of the output (file size, or the device's capacity). */
uint64_t image_writer_size (const struct image_writer *w);

/* Close without syncing: what was not made durable by a SYNC or COMMIT was
 * never promised to anyone. */
void image_writer_close (struct image_writer *w);

/* For a start that failed: image_writer_close, after removing the output
 * if image_writer_open created it and it is still empty (a failed start
 * leaves no new file behind; a file that was there is never removed).
 * NULL is allowed. */
void image_writer_discard (struct image_writer *w);

#endif /* STM_RECEIVER_IMAGE_WRITER_H */
