/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send --compare-only: opening one disk's source (see
 * compare_source.h). */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "compare_only_policy.h"
#include "compare_source.h"
#include "control_client.h"
#include "wire.h"

/* STATUS of the filter on c, and the checks.  -1 with err filled. */
static int
check_filter (struct compare_source *s, struct control_client *c,
              char *err, size_t errlen)
{
  struct control_status st;

  if (control_status (c, &st) == -1) {
    snprintf (err, errlen, "cannot read the status of the filter at %s: %s",
              s->control_path, control_client_error (c));
    return -1;
  }
  if (st.size != s->size) {
    snprintf (err, errlen, "the filter at %s reports an image of %" PRIu64 " bytes "
              "but the source %s has %" PRIu64 " bytes: is this the right control "
              "socket? (the filter was left as it was)", s->control_path, st.size,
              s->uri, s->size);
    return -1;
  }
  if (st.block < WIRE_MIN_BLOCK || st.block > WIRE_MAX_BLOCK) {
    snprintf (err, errlen, "the filter at %s uses a block size of %" PRIu32
              " bytes, outside what the wire protocol carries", s->control_path,
              st.block);
    return -1;
  }
  const char *why = compare_source_refusal (st.state, st.owner);
  if (why != NULL) {
    snprintf (err, errlen, "the filter at %s %s: it cannot be compared now "
              "(state %s, owner %s); it was left as it was", s->control_path, why,
              st.state, st.owner);
    return -1;
  }
  s->block = st.block;
  return 0;
}

/* Connect to the filter, check it, and hand the socket to a channel on
 * the loop.  -1 with err filled. */
static int
open_filter (struct compare_source *s, struct ev_loop *loop, char *err, size_t errlen)
{
  char why[512];
  struct control_client *c = control_client_connect (s->control_path,
                                                     COMPARE_CONTROL_TIMEOUT_MS,
                                                     why, sizeof why);
  if (c == NULL) {
    snprintf (err, errlen, "cannot connect to the filter's control socket %s: %s",
              s->control_path, why);
    return -1;
  }
  if (check_filter (s, c, err, errlen) == -1) {
    control_client_close (c);
    return -1;
  }
  int fd = control_client_release_fd (c);
  if (fd == -1 ||
      (s->ctl = control_channel_new (loop, fd, COMPARE_CONTROL_TIMEOUT_MS,
                                     COMPARE_CONTROL_TIMEOUT_MS)) == NULL) {
    snprintf (err, errlen, "cannot hand the control connection to %s over to the "
              "event loop: %s", s->control_path,
              fd == -1 ? "it is out of step" : "out of memory");
    if (fd >= 0)
      close (fd);
    control_client_close (c);
    return -1;
  }
  control_client_close (c);
  return 0;
}

int
compare_source_open (struct compare_source *s, struct ev_loop *loop,
                     char *err, size_t errlen)
{
  char why[512];

  /* The source first: the filter learns the image size when the first
   * NBD client connects, and answers EAGAIN until then. */
  s->reader = source_reader_open (s->uri, why, sizeof why);
  if (s->reader == NULL) {
    snprintf (err, errlen, "cannot connect to the source %s: %s", s->uri, why);
    return -1;
  }
  s->size = source_reader_size (s->reader);
  if (s->size == 0) {
    snprintf (err, errlen, "the source %s is empty: there is nothing to compare",
              s->uri);
    return -1;
  }
  s->block = COMPARE_DEFAULT_BLOCK;
  if (s->control_path == NULL)
    return 0;
  return open_filter (s, loop, err, errlen);
}

void
compare_source_close (struct compare_source *s)
{
  source_reader_close (s->reader);
  s->reader = NULL;
  /* The filter drops the ownership with the connection. */
  control_channel_free (s->ctl);
  s->ctl = NULL;
}
