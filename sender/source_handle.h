/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: creating a libnbd handle for a connection to the source.
 *
 * The sender opens more than one connection to the source (the read
 * pipeline and the flush probe), and every one of them must accept the
 * same source URI, so the settings that decide that live in one place.
 */
#ifndef STM_SENDER_SOURCE_HANDLE_H
#define STM_SENDER_SOURCE_HANDLE_H

#include <stddef.h>

#include <libnbd.h>

/* A new, unconnected handle named NAME (for libnbd's debug output) that
 * allows local-file parameters such as tls-psk-file= in the URI.  The
 * caller adds its own settings, then connects.  NULL with the reason in
 * errbuf on failure. */
struct nbd_handle *source_handle_create (const char *name,
                                         char *errbuf, size_t errlen);

#endif /* STM_SENDER_SOURCE_HANDLE_H */
