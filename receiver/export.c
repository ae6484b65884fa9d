/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-recv: serving the committed image over NBD (see export.h).
 *
 * nbdkit is started with posix_spawn as
 *   nbdkit -f -i HOST -p PORT --exit-with-parent -P DIR/nbdkit.pid TLS...
 *          --filter=error file file=IMAGE
 *          error=EPERM error-rate=100% error-file=DIR/gate
 * where DIR is a private directory (mkdtemp under $TMPDIR).  While
 * DIR/gate exists the error filter fails every data request; the file
 * is created before nbdkit starts and removed to open the gate.
 *
 * Readiness is nbdkit's pidfile, polled by an ev_timer every few
 * milliseconds: nbdkit writes it once it listens, and never when it
 * cannot bind.  (A probe connecting to the port would also be answered
 * by any other server already there, and COMMITTED would then send a
 * guest to the wrong image.)  Exits are reaped by an ev_child watcher on
 * the default loop.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export.h"
#include "log.h"
#include "time_units.h"

extern char **environ;

/* Between looks at the pidfile while nbdkit starts. */
#define EXPORT_POLL_S 0.005
/* After SIGTERM, how long nbdkit gets to go before SIGKILL, while the
 * loop runs (export_relaunch). */
#define EXPORT_STOP_TIMEOUT_S 5
/* The same when stm-recv ends (export_free), which waits for it.  nbdkit
 * does not always exit on SIGTERM while a client (the source's forward
 * connections) keeps an idle TLS connection open, and a supervisor that
 * gives stm-recv a few seconds before SIGKILL would otherwise kill it in
 * this wait and leave the gate's directory behind.  The file plugin has
 * nothing to lose to SIGKILL: every write it acknowledged is in the
 * file. */
#define EXPORT_FREE_TIMEOUT_MS 1000

struct export {
  struct ev_loop *loop;
  const struct export_hooks *hooks;
  void *opaque;
  enum export_state state;
  pid_t pid;                     /* the running nbdkit, or -1 */
  bool retiring;                 /* pid was told to go (SIGTERM) */
  bool launch_after_exit;        /* start another once pid is reaped */
  bool start_timed_out;          /* pid was killed for not becoming ready */
  uint64_t spawned_ns;           /* when pid was started */
  ev_child child;                /* reaps pid */
  ev_timer poll;                 /* the pidfile while STARTING */
  ev_timer kill_timer;           /* SIGKILL for a retiring nbdkit */

  char image[PATH_MAX];           /* the image, or the group, in words */
  /* A group of several outputs is served by the file plugin's dir=: a
   * private directory of symbolic links, one per disk, named by the disk,
   * so each disk is the NBD export of its name (nbdkit 1.32 serves a
   * directory's files as named exports). */
  bool group;
  char disks_dir[PATH_MAX + 16];
  unsigned ndisks;
  char disk_name[WIRE_MAX_DISKS][WIRE_MAX_DISK_NAME + 1];
  char where[RECEIVER_HOST_MAX + 16];   /* HOST:PORT, for messages */
  char uri[RECEIVER_HOST_MAX + 32];
  char piddir[PATH_MAX];
  char pidfile[PATH_MAX + 16];
  char gate[PATH_MAX + 16];

  /* nbdkit's command line, built once. */
  char host[RECEIVER_HOST_MAX], port[8];
  char file_arg[PATH_MAX + 32], gate_arg[PATH_MAX + 32];
  char psk_arg[PATH_MAX + 16], certs_arg[PATH_MAX + 32];
  const char *argv[32];
};

int
export_format_uri (const char *host, uint16_t port, int tls, char *uri, size_t urilen)
{
  const char *scheme = tls ? "nbds" : "nbd";
  int n;
  if (strchr (host, ':') && host[0] != '[')
    n = snprintf (uri, urilen, "%s://[%s]:%u/", scheme, host, (unsigned) port);
  else
    n = snprintf (uri, urilen, "%s://%s:%u/", scheme, host, (unsigned) port);
  return n < 0 || (size_t) n >= urilen ? -1 : 0;
}

enum export_state
export_state (const struct export *e)
{
  return e->state;
}

const char *
export_uri (const struct export *e)
{
  return e->uri;
}

/* Has the nbdkit we started said it is ready (its pidfile names it)? */
static bool
pidfile_names (const char *pidfile, pid_t pid)
{
  char buf[32];
  ssize_t n;
  int fd = open (pidfile, O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return false;
  n = read (fd, buf, sizeof buf - 1);
  close (fd);
  if (n <= 0)
    return false;
  buf[n] = '\0';
  return strtol (buf, NULL, 10) == (long) pid;
}

static int
exit_code (int status)
{
  return WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

/* Create the gate file (idempotent). */
static int
gate_create (struct export *e)
{
  int fd = open (e->gate, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd == -1)
    return -1;
  close (fd);
  return 0;
}

static void spawn_nbdkit (struct export *e);

static void
poll_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct export *e = w->data;

  if (e->state != EXPORT_STARTING || e->pid <= 0) {
    ev_timer_stop (loop, w);
    return;
  }
  if (pidfile_names (e->pidfile, e->pid)) {
    ev_timer_stop (loop, w);
    (void) unlink (e->pidfile);
    e->state = EXPORT_CLOSED;
    log_info ("nbdkit (pid %d) is ready to export %s at %s after %.0f ms; "
              "it refuses every request until a commit",
              (int) e->pid, e->image, e->uri,
              (time_monotonic_ns () - e->spawned_ns) / 1e6);
    e->hooks->ready (e->opaque);
    return;
  }
  if (time_monotonic_ns () - e->spawned_ns > EXPORT_START_TIMEOUT_S * NS_PER_S) {
    ev_timer_stop (loop, w);
    log_error ("nbdkit (pid %d) exporting %s did not become ready on %s "
               "within %d s; killing it", (int) e->pid, e->image, e->where,
               EXPORT_START_TIMEOUT_S);
    /* The failed hook follows when the child is reaped. */
    e->start_timed_out = true;
    kill (e->pid, SIGKILL);
  }
}

static void
kill_cb (struct ev_loop *loop, ev_timer *w, int revents)
{
  struct export *e = w->data;

  if (e->pid > 0) {
    log_warning ("nbdkit (pid %d) exporting %s did not exit within %d s of "
                 "SIGTERM; killing it", (int) e->pid, e->image,
                 EXPORT_STOP_TIMEOUT_S);
    kill (e->pid, SIGKILL);
  }
}

static void
child_cb (struct ev_loop *loop, ev_child *w, int revents)
{
  struct export *e = w->data;
  enum export_state was = e->state;
  int status = w->rstatus;

  ev_child_stop (loop, w);
  ev_timer_stop (loop, &e->poll);
  ev_timer_stop (loop, &e->kill_timer);
  e->pid = -1;
  e->state = EXPORT_STOPPED;
  /* The gate stays closed while no nbdkit runs, so the next one starts
   * refusing. */
  if (gate_create (e) == -1)
    log_error ("cannot create the export's gate file %s: %m", e->gate);

  if (e->retiring) {
    e->retiring = false;
    if (e->launch_after_exit) {
      e->launch_after_exit = false;
      spawn_nbdkit (e);
    }
    return;
  }
  if (was == EXPORT_STARTING) {
    if (!e->start_timed_out)
      log_error ("nbdkit exporting %s on %s exited at start (status %d; is "
                 "the port in use?): see its messages above", e->image,
                 e->where, exit_code (status));
    e->start_timed_out = false;
    e->hooks->failed (e->opaque);
    return;
  }
  e->hooks->exited (e->opaque, status, was == EXPORT_OPEN);
}

/* Start nbdkit behind the closed gate.  On a failure that happens here
 * (spawn itself), the failed hook is not called: the state is STOPPED
 * and the caller learns it from export_launch's -1. */
static void
spawn_nbdkit (struct export *e)
{
  posix_spawn_file_actions_t fa;
  int r;

  if (gate_create (e) == -1) {
    log_error ("cannot export %s: cannot create its gate file %s: %m",
               e->image, e->gate);
    return;
  }
  (void) unlink (e->pidfile);

  /* nbdkit's stdin is /dev/null; its messages go to our stderr. */
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, 2, 1);
  r = posix_spawnp (&e->pid, "nbdkit", &fa, NULL, (char *const *) e->argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  if (r != 0) {
    log_error ("cannot start nbdkit to export %s on %s: %s", e->image, e->where,
               strerror (r));
    e->pid = -1;
    return;
  }
  e->spawned_ns = time_monotonic_ns ();
  e->state = EXPORT_STARTING;
  e->start_timed_out = false;
  ev_child_set (&e->child, e->pid, 0);
  ev_child_start (e->loop, &e->child);
  ev_timer_start (e->loop, &e->poll);
}

/* Remove the group's directory of links (what of it exists). */
static void
disks_dir_remove (struct export *e)
{
  char link[PATH_MAX + 96];
  unsigned i;

  if (!e->group)
    return;
  for (i = 0; i < e->ndisks; i++) {
    snprintf (link, sizeof link, "%s/%s", e->disks_dir, e->disk_name[i]);
    (void) unlink (link);
  }
  (void) rmdir (e->disks_dir);
}

/* The group's directory of links, in the private directory.  -1 after
 * log_error. */
static int
disks_dir_create (struct export *e, const struct outputs *o)
{
  char path[PATH_MAX], link[PATH_MAX + 96];
  unsigned i;

  snprintf (e->disks_dir, sizeof e->disks_dir, "%s/disks", e->piddir);
  if (mkdir (e->disks_dir, 0700) == -1) {
    log_error ("cannot export %s: cannot create %s: %m", e->image, e->disks_dir);
    return -1;
  }
  for (i = 0; i < o->count; i++) {
    snprintf (link, sizeof link, "%s/%s", e->disks_dir, o->spec[i].name);
    if (realpath (o->spec[i].path, path) == NULL || symlink (path, link) == -1) {
      log_error ("cannot export %s: cannot link %s to %s: %m", e->image, link,
                 o->spec[i].path);
      disks_dir_remove (e);
      return -1;
    }
  }
  return 0;
}

/* What e serves: the one output's image (file=, set here), or the group
 * (dir=, set once the private directory exists); e->image says which in
 * words.  -1 after log_error. */
static int
export_what (struct export *e, const struct outputs *o)
{
  char path[PATH_MAX];
  size_t used;
  unsigned i;

  e->group = o->count > 1;
  e->ndisks = o->count;
  for (i = 0; i < o->count; i++)
    snprintf (e->disk_name[i], sizeof e->disk_name[i], "%s", o->spec[i].name);
  if (e->group) {
    snprintf (e->image, sizeof e->image, "the group of disks");
    for (i = 0; i < o->count; i++) {
      used = strlen (e->image);
      snprintf (e->image + used, sizeof e->image - used, "%s%s", i ? ", " : " ",
                o->spec[i].name);
    }
    return 0;
  }
  if (realpath (o->spec[0].path, path) == NULL) {
    log_error ("cannot export %s: %s", o->spec[0].path, strerror (errno));
    return -1;
  }
  snprintf (e->image, sizeof e->image, "%s", path);
  snprintf (e->file_arg, sizeof e->file_arg, "file=%s", path);
  return 0;
}

/* nbdkit's TLS arguments: the receiver's own credentials.  -1 after
 * log_error. */
static int
tls_args (struct export *e, const struct receiver_options *opts, int *argc)
{
  char path[PATH_MAX];

  switch (opts->tls.mode) {
  case TLS_MODE_PSK:
    if (realpath (opts->tls.psk_file, path) == NULL) {
      log_error ("cannot export %s: %s: %s", e->image, opts->tls.psk_file, strerror (errno));
      return -1;
    }
    snprintf (e->psk_arg, sizeof e->psk_arg, "--tls-psk=%s", path);
    e->argv[(*argc)++] = "--tls=require";
    e->argv[(*argc)++] = e->psk_arg;
    break;
  case TLS_MODE_X509:
    /* nbdkit looks in the directory for ca-cert.pem, server-cert.pem and
     * server-key.pem: the receiver's own --tls-certs layout. */
    if (realpath (opts->tls.certs_dir, path) == NULL) {
      log_error ("cannot export %s: %s: %s", e->image, opts->tls.certs_dir, strerror (errno));
      return -1;
    }
    snprintf (e->certs_arg, sizeof e->certs_arg, "--tls-certificates=%s", path);
    e->argv[(*argc)++] = "--tls=require";
    e->argv[(*argc)++] = e->certs_arg;
    e->argv[(*argc)++] = "--tls-verify-peer";
    break;
  case TLS_MODE_INSECURE:
    e->argv[(*argc)++] = "--tls=off";
    break;
  }
  return 0;
}

struct export *
export_new (struct ev_loop *loop, const struct receiver_options *opts,
            const struct export_hooks *hooks, void *opaque)
{
  const struct outputs *o = &opts->outputs;
  const char *image;
  struct export *e;
  int argc = 0;

  e = calloc (1, sizeof *e);
  if (e == NULL) {
    log_error ("out of memory");
    return NULL;
  }
  e->loop = loop;
  e->hooks = hooks;
  e->opaque = opaque;
  e->pid = -1;
  e->state = EXPORT_STOPPED;
  snprintf (e->where, sizeof e->where, "%s:%u", opts->export_host,
            (unsigned) opts->export_port);

  /* nbdkit wants a bare IPv6 address, the URI a bracketed one. */
  snprintf (e->host, sizeof e->host, "%s", opts->export_host);
  if (e->host[0] == '[') {
    memmove (e->host, e->host + 1, strlen (e->host));
    char *close_bracket = strchr (e->host, ']');
    if (close_bracket)
      *close_bracket = '\0';
  }
  snprintf (e->port, sizeof e->port, "%u", (unsigned) opts->export_port);
  if (export_format_uri (e->host, opts->export_port,
                         opts->tls.mode != TLS_MODE_INSECURE,
                         e->uri, sizeof e->uri) == -1) {
    log_error ("--export %s: the URI is too long", e->where);
    goto fail;
  }
  if (export_what (e, o) == -1)
    goto fail;
  image = e->image;

  /* A private directory for the pidfile that says nbdkit is ready and
   * for the gate, which nobody else may remove. */
  const char *tmpdir = getenv ("TMPDIR");
  if (tmpdir == NULL || tmpdir[0] == '\0')
    tmpdir = "/tmp";
  snprintf (e->piddir, sizeof e->piddir, "%s/stm-recv-export.XXXXXX", tmpdir);
  if (mkdtemp (e->piddir) == NULL) {
    log_error ("cannot export %s: cannot create a directory for nbdkit's "
               "pidfile and gate in %s: %s", image, tmpdir, strerror (errno));
    goto fail;
  }
  snprintf (e->pidfile, sizeof e->pidfile, "%s/nbdkit.pid", e->piddir);
  snprintf (e->gate, sizeof e->gate, "%s/gate", e->piddir);
  snprintf (e->gate_arg, sizeof e->gate_arg, "error-file=%s", e->gate);
  if (e->group) {
    if (disks_dir_create (e, o) == -1)
      goto fail_dir;
    snprintf (e->file_arg, sizeof e->file_arg, "dir=%s", e->disks_dir);
  }

  e->argv[argc++] = "nbdkit";
  e->argv[argc++] = "-f";
  e->argv[argc++] = "-i";
  e->argv[argc++] = e->host;
  e->argv[argc++] = "-p";
  e->argv[argc++] = e->port;
  e->argv[argc++] = "--exit-with-parent";
  e->argv[argc++] = "-P";
  e->argv[argc++] = e->pidfile;
  if (tls_args (e, opts, &argc) == -1)
    goto fail_dir;
  /* The gate: while the file exists, every data request fails with EPERM
   * ("operation not permitted", not an I/O error of the disk). */
  e->argv[argc++] = "--filter=error";
  e->argv[argc++] = "file";
  e->argv[argc++] = e->file_arg;
  e->argv[argc++] = "error=EPERM";
  e->argv[argc++] = "error-rate=100%";
  e->argv[argc++] = e->gate_arg;
  e->argv[argc] = NULL;

  if (gate_create (e) == -1) {
    log_error ("cannot export %s: cannot create its gate file %s: %m",
               image, e->gate);
    goto fail_dir;
  }

  ev_child_init (&e->child, child_cb, 0, 0);
  e->child.data = e;
  ev_timer_init (&e->poll, poll_cb, EXPORT_POLL_S, EXPORT_POLL_S);
  e->poll.data = e;
  ev_timer_init (&e->kill_timer, kill_cb, EXPORT_STOP_TIMEOUT_S, 0.);
  e->kill_timer.data = e;
  return e;

 fail_dir:
  disks_dir_remove (e);
  (void) rmdir (e->piddir);
 fail:
  free (e);
  return NULL;
}

int
export_disk_uri (const struct export *e, unsigned output, char *uri, size_t len)
{
  int n;

  assert (output < e->ndisks);
  /* The base URI ends in "/": the export name follows it. */
  n = snprintf (uri, len, "%s%s", e->uri, e->group ? e->disk_name[output] : "");
  return n < 0 || (size_t) n >= len ? -1 : 0;
}

int
export_launch (struct export *e)
{
  if (e->retiring) {
    e->launch_after_exit = true;
    return 0;
  }
  if (e->state != EXPORT_STOPPED)
    return 0;
  spawn_nbdkit (e);
  return e->state == EXPORT_STARTING ? 0 : -1;
}

int
export_open (struct export *e)
{
  if (e->state == EXPORT_OPEN)
    return 0;
  if (e->state != EXPORT_CLOSED || e->retiring)
    return -1;
  uint64_t t0 = time_monotonic_ns ();
  if (unlink (e->gate) == -1 && errno != ENOENT) {
    log_error ("cannot open the export of %s at %s: cannot remove its gate "
               "file %s: %m", e->image, e->uri, e->gate);
    return -1;
  }
  e->state = EXPORT_OPEN;
  /* This line's form is read by the Ansible module (stm_recv.py). */
  log_info ("exporting %s over NBD at %s (nbdkit pid %d): its gate opened in "
            "%.3f ms", e->image, e->uri, (int) e->pid,
            (time_monotonic_ns () - t0) / 1e6);
  return 0;
}

/* Tell nbdkit to go; child_cb reaps it. */
static void
retire (struct export *e)
{
  if (e->pid <= 0 || e->retiring)
    return;
  e->retiring = true;
  kill (e->pid, SIGTERM);
  ev_timer_stop (e->loop, &e->poll);
  ev_timer_start (e->loop, &e->kill_timer);
}

int
export_close (struct export *e)
{
  if (gate_create (e) == -1) {
    log_error ("cannot close the export of %s at %s: cannot create its gate "
               "file %s: %m; stopping its nbdkit instead", e->image, e->uri,
               e->gate);
    retire (e);
    return -1;
  }
  if (e->state == EXPORT_OPEN) {
    e->state = EXPORT_CLOSED;
    log_info ("the export of %s at %s refuses every request again", e->image,
              e->uri);
  }
  return 0;
}

void
export_relaunch (struct export *e)
{
  (void) export_close (e);
  if (e->pid > 0) {
    retire (e);
    e->launch_after_exit = true;
  }
  else
    (void) export_launch (e);
}

void
export_free (struct export *e)
{
  if (e == NULL)
    return;
  if (ev_is_active (&e->child))
    ev_child_stop (e->loop, &e->child);
  ev_timer_stop (e->loop, &e->poll);
  ev_timer_stop (e->loop, &e->kill_timer);
  /* Closed first, so that nothing is served while nbdkit goes. */
  (void) gate_create (e);
  if (e->pid > 0) {
    struct timespec pause = { 0, 10 * 1000 * 1000 };
    int status;

    kill (e->pid, SIGTERM);
    for (int i = 0; i < EXPORT_FREE_TIMEOUT_MS / 10; i++) {
      if (waitpid (e->pid, &status, WNOHANG) == e->pid) {
        e->pid = -1;
        break;
      }
      nanosleep (&pause, NULL);
    }
    if (e->pid > 0) {
      kill (e->pid, SIGKILL);
      waitpid (e->pid, &status, 0);
    }
  }
  (void) unlink (e->pidfile);
  (void) unlink (e->gate);
  disks_dir_remove (e);
  (void) rmdir (e->piddir);
  free (e);
}
