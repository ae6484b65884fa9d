/* SPDX-License-Identifier: BSD-3-Clause */
/* stm report: the HTML page of one migration, drawn from a timeline.
 *
 * The page is self-contained: inline CSS and inline SVG, no script, no
 * font, image or style fetched from anywhere (the only URL in it is the
 * SVG namespace name, which is never fetched), so it can be mailed,
 * attached to a ticket or opened on an air-gapped host.  It shows, per
 * disk, a timeline of throughput, dirty bytes and bytes sent over the
 * passes (drawn as bands), with markers for throttling, the cutover and
 * its downtime, called-off cutovers, reconnections and errors; then the
 * outcome and tables of the passes and the events.
 *
 * Pure apart from writing to the stream it is given.
 */
#ifndef STM_REPORT_RENDER_H
#define STM_REPORT_RENDER_H

#include <stdio.h>

#include "timeline.h"

/* Colours, fixed so that tests can look for them in a screenshot. */
#define REPORT_COLOUR_RATE     "#0072b2"   /* throughput line */
#define REPORT_COLOUR_DIRTY    "#e69f00"
#define REPORT_COLOUR_SENT     "#009e73"
#define REPORT_COLOUR_WIRE     "#56b4e9"
#define REPORT_COLOUR_DOWNTIME "#d55e00"   /* the cutover and its downtime */
#define REPORT_COLOUR_THROTTLE "#cc79a7"
#define REPORT_COLOUR_CUTOVER  "#555555"   /* freeze, commit, flip alone */
#define REPORT_COLOUR_OVERRUN  "#8c564b"
#define REPORT_COLOUR_RECONNECT "#6a3d9a"
#define REPORT_COLOUR_ERROR    "#b2182b"

/* Write the page to fp.  Returns 0, or -1 if writing to fp failed (the
 * caller names the file: errno is as the failed write left it). */
int report_render (const struct report_timeline *tl, FILE *fp);

#endif /* STM_REPORT_RENDER_H */
