/* SPDX-License-Identifier: BSD-3-Clause */
/* stm-send: the compression worker thread.  See compress_worker.h.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compress_worker.h"
#include "log.h"
#include "zstd_frame.h"

struct compress_worker {
  struct ev_loop *loop;
  ev_async wake;                 /* the worker's "jobs done" to the loop */
  void (*done) (void *opaque);
  void *opaque;
  struct zstd_deflater *z;       /* the worker's alone */
  pthread_t thread;
  pthread_mutex_t lock;          /* guards what follows */
  pthread_cond_t cond;           /* todo grew, or stop */
  struct compress_job *todo, *todo_last;
  struct compress_job *done_first, *done_last;
  bool stop;
  unsigned outstanding;          /* the loop's count: submitted, not taken */
};

static uint64_t
thread_cpu_ns (void)
{
  struct timespec ts;

  if (clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts) == -1)
    return 0;
  return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

struct compress_job *
compress_job_new (const void *buf, size_t n)
{
  struct compress_job *job = calloc (1, sizeof *job);

  if (job == NULL)
    return NULL;
  job->buf = malloc (n);
  if (job->buf == NULL) {
    free (job);
    return NULL;
  }
  memcpy (job->buf, buf, n);
  job->n = n;
  return job;
}

void
compress_job_free (struct compress_job *job)
{
  if (job == NULL)
    return;
  free (job->buf);
  free (job);
}

/* Compress one job, outside the lock (the loop has probed it already).
 * A frame is at least an eighth shorter than the payload (zstd_frame.h),
 * so it replaces the payload in the job's buffer. */
static void
compress_one (struct compress_worker *w, struct compress_job *job)
{
  uint64_t t0 = thread_cpu_ns ();
  const uint8_t *frame = NULL;
  size_t flen;

  flen = zstd_deflate (w->z, job->buf, job->n, &frame);
  if (flen > 0 && flen < job->n)
    memcpy (job->buf, frame, flen);
  else
    flen = 0;
  job->flen = flen;
  job->cpu_ns = thread_cpu_ns () - t0;
}

static void *
worker_main (void *arg)
{
  struct compress_worker *w = arg;

  pthread_mutex_lock (&w->lock);
  for (;;) {
    while (w->todo == NULL && !w->stop)
      pthread_cond_wait (&w->cond, &w->lock);
    if (w->stop)
      break;
    struct compress_job *job = w->todo;
    w->todo = job->next;
    if (w->todo == NULL)
      w->todo_last = NULL;
    pthread_mutex_unlock (&w->lock);

    compress_one (w, job);

    pthread_mutex_lock (&w->lock);
    job->next = NULL;
    if (w->done_last != NULL)
      w->done_last->next = job;
    else
      w->done_first = job;
    w->done_last = job;
    pthread_mutex_unlock (&w->lock);
    ev_async_send (w->loop, &w->wake);
    pthread_mutex_lock (&w->lock);
  }
  pthread_mutex_unlock (&w->lock);
  return NULL;
}

static void
wake_cb (struct ev_loop *loop, ev_async *a, int revents)
{
  struct compress_worker *w = a->data;
  w->done (w->opaque);
}

struct compress_worker *
compress_worker_new (struct ev_loop *loop, int level, void (*done) (void *opaque),
                     void *opaque)
{
  struct compress_worker *w = calloc (1, sizeof *w);
  int err;

  if (w == NULL || (w->z = zstd_deflater_new (level)) == NULL) {
    log_error ("out of memory for the zstd compressor's thread (--compress)");
    free (w);
    errno = ENOMEM;
    return NULL;
  }
  w->loop = loop;
  w->done = done;
  w->opaque = opaque;
  pthread_mutex_init (&w->lock, NULL);
  pthread_cond_init (&w->cond, NULL);
  ev_async_init (&w->wake, wake_cb);
  w->wake.data = w;
  err = pthread_create (&w->thread, NULL, worker_main, w);
  if (err != 0) {
    log_error ("cannot start the zstd compressor's thread (--compress): %s",
               strerror (err));
    zstd_deflater_free (w->z);
    pthread_mutex_destroy (&w->lock);
    pthread_cond_destroy (&w->cond);
    free (w);
    errno = err;
    return NULL;
  }
  ev_async_start (loop, &w->wake);
  /* The watcher alone must not keep the loop running: the migration's
   * own watchers decide when it ends. */
  ev_unref (loop);
  return w;
}

static void
free_list (struct compress_job *job)
{
  while (job != NULL) {
    struct compress_job *next = job->next;
    compress_job_free (job);
    job = next;
  }
}

void
compress_worker_free (struct compress_worker *w)
{
  if (w == NULL)
    return;
  pthread_mutex_lock (&w->lock);
  w->stop = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
  pthread_join (w->thread, NULL);
  ev_ref (w->loop);
  ev_async_stop (w->loop, &w->wake);
  free_list (w->todo);
  free_list (w->done_first);
  zstd_deflater_free (w->z);
  pthread_mutex_destroy (&w->lock);
  pthread_cond_destroy (&w->cond);
  free (w);
}

void
compress_worker_submit (struct compress_worker *w, struct compress_job *job)
{
  job->next = NULL;
  pthread_mutex_lock (&w->lock);
  if (w->todo_last != NULL)
    w->todo_last->next = job;
  else
    w->todo = job;
  w->todo_last = job;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
  w->outstanding++;
}

struct compress_job *
compress_worker_take (struct compress_worker *w)
{
  struct compress_job *job;

  pthread_mutex_lock (&w->lock);
  job = w->done_first;
  if (job != NULL) {
    w->done_first = job->next;
    if (w->done_first == NULL)
      w->done_last = NULL;
    job->next = NULL;
  }
  pthread_mutex_unlock (&w->lock);
  if (job != NULL)
    w->outstanding--;
  return job;
}

unsigned
compress_worker_outstanding (const struct compress_worker *w)
{
  return w != NULL ? w->outstanding : 0;
}
