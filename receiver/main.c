/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: the command line.
 *
 * Parses the options into struct receiver_options, then hands over to
 * receiver.c and turns the outcome into the exit status:
 *   0  with --once, after a migration became final (the sender reported
 *      that the source flipped to it) and RECORDED was sent;
 *   1  a fatal error (cannot listen, cannot open the output, an output
 *      that is not this receiver's to overwrite without --force, bad
 *      credentials), an interruption by SIGINT/SIGTERM, or a --once run
 *      whose sender aborted;
 *   2  a usage error.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>

#include "log.h"
#include "parse.h"
#include "receiver.h"
#include "receiver_options.h"


static const char usage_text[] =
  "Usage: stm-recv --listen HOST:PORT (--output IMAGE | --output NAME=IMAGE ...)\n"
  "                (--tls-psk FILE [--tls-user NAME] | --tls-certs DIR | --insecure)\n"
  "                [--once] [--json] [--force] [--export HOST:PORT]\n"
  "\n"
  "Receive a disk migrated by stm-send and write it to IMAGE (a file, created\n"
  "if absent, or a block device); or a group of named disks migrated together,\n"
  "each to its own IMAGE.\n"
  "\n"
  "  --listen HOST:PORT  address to listen on (\":PORT\" for any; port 0 picks a\n"
  "                      free port, announced on stderr and in the JSON events)\n"
  "  --output IMAGE      the image file or block device to write\n"
  "  --output NAME=IMAGE (repeatable, up to 16) the image of the disk NAME\n"
  "                      (1-64 of A-Z a-z 0-9 . _ -); write ./A=B for a file\n"
  "                      named A=B\n"
  "  --tls-psk FILE      TLS with pre-shared keys (psktool's user:hexkey format)\n"
  "  --tls-user NAME     with --tls-psk: accept only this PSK identity\n"
  "  --tls-certs DIR     TLS with X.509: ca-cert.pem, server-cert.pem,\n"
  "                      server-key.pem; the sender's certificate is verified\n"
  "  --insecure          no TLS: data crosses the network in the clear\n"
  "  --once              exit (status 0) once a migration is final (its source flipped)\n"
  "  --json              print events as JSON lines on stdout\n"
  "  --export HOST:PORT  after the commit, serve the finished image over NBD\n"
  "                      there (nbdkit, same TLS credentials), announce its\n"
  "                      URI to the sender for --flip forward, take no more\n"
  "                      senders, and keep running while it serves\n"
  "  --force             overwrite an output that is not this migration's: a\n"
  "                      non-empty file with no IMAGE.stm-state beside it, or\n"
  "                      one whose state file names another migration\n"
  "  --help              print this help and exit\n"
  "  --version           print the version and exit\n";

enum {
  OPT_LISTEN = 256,
  OPT_OUTPUT,
  OPT_TLS_PSK,
  OPT_TLS_USER,
  OPT_TLS_CERTS,
  OPT_INSECURE,
  OPT_ONCE,
  OPT_JSON,
  OPT_EXPORT,
  OPT_FORCE,
  OPT_HELP,
  OPT_VERSION,
};

static const struct option long_options[] = {
  { "listen",    required_argument, NULL, OPT_LISTEN },
  { "output",    required_argument, NULL, OPT_OUTPUT },
  { "tls-psk",   required_argument, NULL, OPT_TLS_PSK },
  { "tls-user",  required_argument, NULL, OPT_TLS_USER },
  { "tls-certs", required_argument, NULL, OPT_TLS_CERTS },
  { "insecure",  no_argument,       NULL, OPT_INSECURE },
  { "once",      no_argument,       NULL, OPT_ONCE },
  { "json",      no_argument,       NULL, OPT_JSON },
  { "export",    required_argument, NULL, OPT_EXPORT },
  { "force",     no_argument,       NULL, OPT_FORCE },
  { "help",      no_argument,       NULL, OPT_HELP },
  { "version",   no_argument,       NULL, OPT_VERSION },
  { NULL, 0, NULL, 0 },
};

/* The same shape as stm-send's (common/log.h). */
#define usage_error log_usage_error

/* Fill opts from argv, or exit 0 (--help, --version) or 2 (usage). */
static void
parse_command_line (int argc, char *argv[], struct receiver_options *opts)
{
  const char *listen = NULL, *psk = NULL, *user = NULL, *certs = NULL;
  const char *export_arg = NULL;
  bool insecure = false;
  int modes, c;

  memset (opts, 0, sizeof *opts);
  /* getopt's own messages would not say how to get help; ours do. */
  opterr = 0;
  /* The leading ":" makes getopt report a missing argument as ':'. */
  while ((c = getopt_long (argc, argv, ":", long_options, NULL)) != -1) {
    switch (c) {
    case OPT_LISTEN: listen = optarg; break;
    case OPT_OUTPUT: {
      struct output_spec spec;
      char why[OUTPUTS_WHY_MAX];

      if (output_spec_parse (optarg, &spec, why) == -1 ||
          outputs_add (&opts->outputs, &spec, why) == -1)
        usage_error ("%s", why);
      break;
    }
    case OPT_TLS_PSK: psk = optarg; break;
    case OPT_TLS_USER: user = optarg; break;
    case OPT_TLS_CERTS: certs = optarg; break;
    case OPT_INSECURE: insecure = true; break;
    case OPT_ONCE: opts->once = true; break;
    case OPT_JSON: opts->json = true; break;
    case OPT_EXPORT: export_arg = optarg; break;
    case OPT_FORCE: opts->force = true; break;
    case OPT_HELP:
      fputs (usage_text, stdout);
      exit (EXIT_SUCCESS);
    case OPT_VERSION:
      printf ("stm-recv %s\n", PACKAGE_VERSION);
      exit (EXIT_SUCCESS);
    case ':':
      usage_error ("option '%s' needs an argument", argv[optind - 1]);
    default:
      if (optopt != 0 && optopt < 256)
        usage_error ("unknown option '-%c'", optopt);
      usage_error ("unknown or ambiguous option '%s'", argv[optind - 1]);
    }
  }
  if (optind < argc)
    usage_error ("unexpected argument '%s'", argv[optind]);

  if (listen == NULL)
    usage_error ("--listen HOST:PORT is required");
  if (opts->outputs.count == 0)
    usage_error ("--output IMAGE (or --output NAME=IMAGE for each disk) is required");

  /* Port 0 means "pick a free port", which parse_host_port accepts. */
  if (parse_host_port (listen, opts->listen_host, sizeof opts->listen_host,
                       &opts->listen_port) == -1)
    usage_error ("--listen '%s': expected HOST:PORT, [IPv6]:PORT or :PORT "
                 "with a port from 0 to 65535", listen);

  modes = (psk != NULL) + (certs != NULL) + insecure;
  if (modes != 1)
    usage_error ("%s: give exactly one of --tls-psk FILE, --tls-certs DIR "
                 "or --insecure",
                 modes == 0 ? "no transport security chosen"
                 : "conflicting transport security options");
  if (user != NULL && psk == NULL)
    usage_error ("--tls-user is only meaningful with --tls-psk");

  /* The export's address goes into a URI the source host connects to: it
   * needs a host that names this machine and a real port. */
  if (export_arg != NULL) {
    if (parse_host_port (export_arg, opts->export_host, sizeof opts->export_host,
                         &opts->export_port) == -1 || opts->export_port == 0)
      usage_error ("--export '%s': expected HOST:PORT with a port from 1 to 65535",
                   export_arg);
    if (opts->export_host[0] == '\0' || strcmp (opts->export_host, "0.0.0.0") == 0 ||
        strcmp (opts->export_host, "::") == 0 || strcmp (opts->export_host, "[::]") == 0)
      usage_error ("--export '%s': give the host name or address the source "
                   "host reaches this one by, not a wildcard", export_arg);
  }

  if (psk != NULL) {
    opts->tls.mode = TLS_MODE_PSK;
    opts->tls.psk_file = psk;
    opts->tls.psk_user = user;
  }
  else if (certs != NULL) {
    opts->tls.mode = TLS_MODE_X509;
    opts->tls.certs_dir = certs;
  }
  else
    opts->tls.mode = TLS_MODE_INSECURE;
}

int
main (int argc, char *argv[])
{
  struct receiver_options opts;
  struct receiver rx;
  struct ev_loop *loop;
  int status;

  parse_command_line (argc, argv, &opts);

  /* A sender that vanishes while we write to it must be an error on that
   * connection, not the end of the receiver. */
  signal (SIGPIPE, SIG_IGN);
  /* Under a file size limit, a write past it must fail with EFBIG (and be
   * reported as the destination running out of space), not kill us. */
  signal (SIGXFSZ, SIG_IGN);

  loop = ev_default_loop (EVFLAG_AUTO);
  if (loop == NULL) {
    log_error ("cannot initialise the event loop (libev)");
    return EXIT_FAILURE;
  }
  if (receiver_init (&rx, loop, &opts) == -1)
    status = EXIT_FAILURE;
  else
    status = receiver_run (&rx);
  receiver_cleanup (&rx);
  ev_loop_destroy (loop);
  return status;
}
