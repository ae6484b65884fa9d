/* stm-recv: serving the finished image over NBD (see export.h).
 *
 * nbdkit is started with posix_spawn and watched with an ev_child watcher
 * on the (default) loop, which keeps the loop, and so stm-recv, running
 * while the export is up.  Readiness is nbdkit's pidfile, in a private
 * directory: nbdkit writes it once it listens, never when it cannot bind,
 * and it names the pid of the nbdkit started here, whereas a TCP probe
 * would be answered by any other server already on the port.  The
 * pidfile is looked at every few milliseconds, before the loop runs
 * again, until it names that pid, nbdkit exits, or
 * EXPORT_START_TIMEOUT_S runs out.
 */
#include <config.h>

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
#include <unistd.h>

#include "export.h"
#include "log.h"

extern char **environ;

#define NS_PER_S 1000000000ull
/* Between looks at the pidfile while nbdkit starts. */
#define EXPORT_POLL_NS (5 * 1000 * 1000)
/* After SIGTERM, how long nbdkit gets to go before SIGKILL. */
#define EXPORT_STOP_TIMEOUT_S 5

struct export {
  struct ev_loop *loop;
  pid_t pid;
  ev_child child;
  export_exit_fn on_exit;
  void *opaque;
  char where[RECEIVER_HOST_MAX + 16];   /* HOST:PORT, for messages */
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

/* Has the nbdkit we started said it is ready?  nbdkit writes its pidfile
 * once it listens, and never when it cannot bind.  (A probe connecting to
 * the port would also be answered by any other server already there, and
 * COMMITTED would then send a guest to the wrong image.) */
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

static void
child_cb (struct ev_loop *loop, ev_child *w, int revents)
{
  struct export *e = w->data;
  ev_child_stop (loop, w);
  e->pid = -1;
  if (e->on_exit)
    e->on_exit (e->opaque, w->rstatus);
}

/* The private directory of nbdkit's pidfile, and the file. */
static void
remove_pidfile_dir (const char *piddir, const char *pidfile)
{
  (void) unlink (pidfile);
  (void) rmdir (piddir);
}

static struct export *
start_nbdkit (struct ev_loop *loop, const struct receiver_options *opts,
              const char *image, char *uri, size_t urilen,
              export_exit_fn on_exit, void *opaque)
{
  char host[RECEIVER_HOST_MAX], port[8], file_arg[PATH_MAX + 8];
  char psk_arg[PATH_MAX + 16], certs_arg[PATH_MAX + 32], path[PATH_MAX];
  char piddir[PATH_MAX], pidfile[PATH_MAX + 16];
  const char *argv[24];
  int argc = 0;

  /* nbdkit wants a bare IPv6 address, the URI a bracketed one. */
  snprintf (host, sizeof host, "%s", opts->export_host);
  if (host[0] == '[') {
    memmove (host, host + 1, strlen (host));
    char *close_bracket = strchr (host, ']');
    if (close_bracket)
      *close_bracket = '\0';
  }
  snprintf (port, sizeof port, "%u", (unsigned) opts->export_port);
  if (export_format_uri (host, opts->export_port,
                         opts->tls.mode != TLS_MODE_INSECURE, uri, urilen) == -1) {
    log_error ("--export %s:%u: the URI is too long", host, opts->export_port);
    return NULL;
  }
  if (realpath (image, path) == NULL) {
    log_error ("cannot export %s: %s", image, strerror (errno));
    return NULL;
  }
  snprintf (file_arg, sizeof file_arg, "file=%s", path);

  argv[argc++] = "nbdkit";
  argv[argc++] = "-f";
  argv[argc++] = "-i";
  argv[argc++] = host;
  argv[argc++] = "-p";
  argv[argc++] = port;
  argv[argc++] = "--exit-with-parent";
  argv[argc++] = "-P";
  argv[argc++] = pidfile;       /* filled in below */
  switch (opts->tls.mode) {
  case TLS_MODE_PSK:
    if (realpath (opts->tls.psk_file, path) == NULL) {
      log_error ("cannot export %s: %s: %s", image, opts->tls.psk_file, strerror (errno));
      return NULL;
    }
    snprintf (psk_arg, sizeof psk_arg, "--tls-psk=%s", path);
    argv[argc++] = "--tls=require";
    argv[argc++] = psk_arg;
    break;
  case TLS_MODE_X509:
    /* nbdkit looks in the directory for ca-cert.pem, server-cert.pem and
     * server-key.pem: the receiver's own --tls-certs layout. */
    if (realpath (opts->tls.certs_dir, path) == NULL) {
      log_error ("cannot export %s: %s: %s", image, opts->tls.certs_dir, strerror (errno));
      return NULL;
    }
    snprintf (certs_arg, sizeof certs_arg, "--tls-certificates=%s", path);
    argv[argc++] = "--tls=require";
    argv[argc++] = certs_arg;
    argv[argc++] = "--tls-verify-peer";
    break;
  case TLS_MODE_INSECURE:
    argv[argc++] = "--tls=off";
    break;
  }
  argv[argc++] = "file";
  argv[argc++] = file_arg;
  argv[argc] = NULL;

  /* A private directory for the pidfile that says nbdkit is ready. */
  const char *tmpdir = getenv ("TMPDIR");
  if (tmpdir == NULL || tmpdir[0] == '\0')
    tmpdir = "/tmp";
  snprintf (piddir, sizeof piddir, "%s/stm-recv-export.XXXXXX", tmpdir);
  if (mkdtemp (piddir) == NULL) {
    log_error ("cannot export %s: cannot create a directory for nbdkit's "
               "pidfile in %s: %s", image, tmpdir, strerror (errno));
    return NULL;
  }
  snprintf (pidfile, sizeof pidfile, "%s/nbdkit.pid", piddir);

  struct export *e = calloc (1, sizeof *e);
  if (e == NULL) {
    log_error ("out of memory");
    rmdir (piddir);
    return NULL;
  }
  e->loop = loop;
  e->on_exit = on_exit;
  e->opaque = opaque;
  snprintf (e->where, sizeof e->where, "%s:%u", opts->export_host,
            (unsigned) opts->export_port);

  /* nbdkit's stdin is /dev/null; its messages go to our stderr. */
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2 (&fa, 2, 1);
  int r = posix_spawnp (&e->pid, "nbdkit", &fa, NULL, (char *const *) argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  if (r != 0) {
    log_error ("cannot start nbdkit to export %s on %s: %s", image, e->where,
               strerror (r));
    rmdir (piddir);
    free (e);
    return NULL;
  }

  struct timespec pause = { 0, EXPORT_POLL_NS };
  uint64_t deadline = time_monotonic_ns () + EXPORT_START_TIMEOUT_S * NS_PER_S;
  for (;;) {
    int status;
    if (waitpid (e->pid, &status, WNOHANG) == e->pid) {
      log_error ("nbdkit exporting %s on %s exited at start (status %d; is "
                 "the port in use?): see its messages above", image, e->where,
                 WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status));
      remove_pidfile_dir (piddir, pidfile);
      free (e);
      return NULL;
    }
    if (pidfile_names (pidfile, e->pid))
      break;
    if (time_monotonic_ns () > deadline) {
      log_error ("nbdkit exporting %s did not become ready on %s within %d s",
                 image, e->where, EXPORT_START_TIMEOUT_S);
      e->on_exit = NULL;
      export_stop (e);
      remove_pidfile_dir (piddir, pidfile);
      return NULL;
    }
    nanosleep (&pause, NULL);
  }
  remove_pidfile_dir (piddir, pidfile);

  ev_child_init (&e->child, child_cb, e->pid, 0);
  e->child.data = e;
  ev_child_start (loop, &e->child);
  log_info ("exporting %s over NBD at %s (nbdkit pid %d)", image, uri, (int) e->pid);
  return e;
}

struct export *
export_start (struct ev_loop *loop, const struct receiver_options *opts,
              const char *image, char *uri, size_t urilen,
              export_exit_fn on_exit, void *opaque)
{
  struct export *e = start_nbdkit (loop, opts, image, uri, urilen, on_exit, opaque);

  /* start_nbdkit fills in the URI before it knows whether nbdkit starts:
   * announce none unless it did, or a sender would be sent to whatever
   * else answers on that port. */
  if (e == NULL && urilen > 0)
    uri[0] = '\0';
  return e;
}

void
export_stop (struct export *e)
{
  if (e == NULL)
    return;
  if (ev_is_active (&e->child))
    ev_child_stop (e->loop, &e->child);
  if (e->pid > 0) {
    kill (e->pid, SIGTERM);
    struct timespec pause = { 0, 10 * 1000 * 1000 };
    int status;
    for (int i = 0; i < EXPORT_STOP_TIMEOUT_S * 100; i++) {
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
  free (e);
}
