/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the state file kept beside the output, on disk.
 *
 * For an output IMAGE the state file is IMAGE.stm-state, in the same
 * directory (for a block device such as /dev/vg/disk that is
 * /dev/vg/disk.stm-state, which lives only as long as /dev: it survives a
 * restart of stm-recv, not a reboot).  Its text is state_format.h's.
 *
 * The file is replaced atomically: the new text goes into IMAGE.stm-state.tmp
 * in the same directory, which is fsync'd, renamed over the state file,
 * and then the directory is fsync'd, so after a crash the state file is
 * either the old record or the new one, never a mixture or nothing.
 * stm-recv holds the output's lock while it runs (image_writer.h), so no
 * other stm-recv writes the same state file.
 *
 * Like image_writer.h: state_file_open reports its own errors (naming the
 * file); the other calls return -1 with errno set and report nothing, the
 * caller reports once with the context it knows.
 */
#ifndef STM_RECEIVER_STATE_FILE_H
#define STM_RECEIVER_STATE_FILE_H

#include "migration_record.h"
#include "state_format.h"

#define STATE_FILE_SUFFIX ".stm-state"

struct state_file;

/* Prepare to keep the state of the output at output_path: work out the
 * state file's name and open its directory.  Reads and writes nothing.
 * NULL after log_error. */
struct state_file *state_file_open (const char *output_path);

/* Read the state file.  *found says whether it is absent, valid (then *r
 * holds its record) or invalid (then why says what is wrong with it).
 * -1 with errno when it cannot be read at all (permissions, I/O). */
int state_file_load (struct state_file *sf, enum state_found *found,
                     struct migration_record *r, char why[STATE_WHY_MAX]);

/* Atomically replace the state file with the record (which must be
 * known).  -1 with errno on failure.  *step names the step that failed
 * ("writing", "syncing", "renaming", "syncing the directory of"); in the
 * last case the new file has replaced the old one, but a crash may still
 * undo that. */
int state_file_store (struct state_file *sf, const struct migration_record *r,
                      const char **step);

/* Remove the state file (absent already is success) and sync its
 * directory, so that no record of it survives a crash.  -1 with errno. */
int state_file_remove (struct state_file *sf);

const char *state_file_path (const struct state_file *sf);

/* NULL is allowed. */
void state_file_close (struct state_file *sf);

#endif /* STM_RECEIVER_STATE_FILE_H */
