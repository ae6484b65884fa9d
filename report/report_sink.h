/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: the report of a running stm-send (--report FILE.html): its
 * JSON event lines are taken as they are made, into a bounded timeline
 * (timeline.h), and the page is written to FILE.html once, at the end.
 *
 * The page is written to a temporary file beside FILE.html and renamed
 * over it, so a reader never sees half a page and a failed write leaves
 * an earlier report in place.  A failure is reported once, naming the
 * file; it does not change stm-send's exit status, which says what state
 * the source is in.
 */
#ifndef STM_REPORT_SINK_H
#define STM_REPORT_SINK_H

#include <stddef.h>

struct report_sink;

/* A sink that will write to path, or NULL (out of memory, reported). */
struct report_sink *report_sink_new (const char *path);
/* Take one JSON event line (as stm-send printed it, newline or not).
 * The signature is progress_set_tee's (opaque is the sink). */
void report_sink_line (void *sink, const char *line, size_t len);
/* Write the page to the sink's file and free the sink.  Returns 0, or -1
 * after reporting what failed on which file.  NULL is a no-op. */
int report_sink_finish (struct report_sink *sink);

#endif /* STM_REPORT_SINK_H */
