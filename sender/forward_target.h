/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: where a forward flip sends the guest, and having the filter
 * connect there before the freeze (forward_target.c).
 */
#ifndef STM_SENDER_FORWARD_TARGET_H
#define STM_SENDER_FORWARD_TARGET_H

#include <stddef.h>

#include "migration.h"
#include "wire.h"

/* The URI the filter is to forward to, made from the one the receiver
 * announced (text[0..text_len), without credentials) by adding this
 * host's TLS credentials; a plain nbd:// URI, or one that already carries
 * a query or a user, is used as it is, and "" stays "".  -1 after
 * migration_fail. */
int forward_target_uri (struct migration *m, const char *text, size_t text_len,
                        char *uri, size_t len);
/* Ask disk d's filter (PRECONNECT) to connect to uri now, if the flip is
 * forward, the source is not frozen and it was not asked for this URI on
 * this control connection already.  A refusal is a warning, not a
 * failure. */
void forward_target_prepare (struct migration_disk *d, const char *uri);
/* EXPORT came for the disk its header names: keep the announced URI (with
 * our credentials) as that disk's forward target, and prepare the forward
 * flip to it (unless --flip forward=URI names another). */
void forward_target_on_export (struct migration *m, const struct wire_msg *msg);

#endif /* STM_SENDER_FORWARD_TARGET_H */
