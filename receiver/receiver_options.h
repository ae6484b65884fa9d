/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the settings parsed from the command line.
 *
 * main.c fills this once and everything else reads it; nothing changes it
 * after the loop starts.  The strings point into argv.
 */
#ifndef STM_RECEIVER_OPTIONS_H
#define STM_RECEIVER_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "outputs.h"
#include "tls_transport.h"

/* Room for a host name or a bracketed IPv6 literal from --listen. */
#define RECEIVER_HOST_MAX 256

struct receiver_options {
  char listen_host[RECEIVER_HOST_MAX];   /* "" = any address */
  uint16_t listen_port;                  /* 0 = let the kernel pick */
  struct outputs outputs;                /* --output IMAGE, or NAME=IMAGE ... */
  struct tls_options tls;                /* --tls-psk/--tls-user, --tls-certs, --insecure */
  bool once;                             /* exit after one committed migration */
  bool json;                             /* JSON events on stdout */
  /* --export HOST:PORT: serve the finished image there (export.h); no
   * export when export_port is 0. */
  char export_host[RECEIVER_HOST_MAX];
  uint16_t export_port;
  bool force;                            /* overwrite an output that holds
                                          * something else */
};

#endif /* STM_RECEIVER_OPTIONS_H */
