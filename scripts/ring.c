/*
 * ring.c: the shmq SPSC ring protocol in C, between two processes, as the
 * physical reference for `npm run bench` (scripts/bench.mjs compiles it with
 * `cc -O2`).
 *
 * Same bytes as lib/layout.ts, layout v2 SPSC: a 640-byte segment header
 * (producer position at 128, consumer position at 256, slot 0 (consumer)
 * waiting/doorbell at 392/396, slot 1 (producer) waiting/doorbell at 520/524),
 * then the ring. A frame is an 8-byte header {int32 length, int32 type word}
 * followed by the payload, padded to 8 bytes; the type word is
 * frame type << 16 | writer slot << 24 (frame type 1 message, 2 padding;
 * message type tag 0, writer slot 1). A frame that does not fit before the end
 * of the ring is preceded by a padding frame covering the rest of the ring.
 * Positions are byte counts taken mod capacity (a power of two); layout v2
 * makes them 64-bit with the low word at the offset, and this program keeps
 * only that low word (the high words stay 0): both sides read only the
 * other's low word, as shmq's hot paths do, and nothing else ever reads these
 * rings, so the store of the high word when the low word wraps is left out.
 *
 * Protocol, as in shmq:
 *   producer: caches the consumer position and re-reads it only when the ring
 *             looks full; writes the frame, then publishes its position with a
 *             release store, once per frame.
 *   consumer: acquires the producer position, handles every frame up to it,
 *             then publishes its own position once per batch.
 *
 * The region is an anonymous MAP_SHARED mapping made before fork(), so the two
 * processes share it exactly as two Node processes share /dev/shm/NAME.
 *
 * Modes (each prints one JSON line on stdout):
 *   throughput <msgSize> <count> <capacity> [maxMs] [warmMs]
 *                                             one-way stream, consumer copies out:
 *                                             warmMs of warm-up, a mark, then count
 *                                             messages or maxMs, then the end
 *   rtt-spin   <count> [warmup]               ping-pong over two rings, both spin
 *   rtt-futex  <count> [warmup]               same, each waiting side parks at once
 *                                              on its doorbell word (FUTEX_WAIT)
 *   rtt-eventfd <count> [warmup]              blocking read()/write() on two eventfds
 *                                              (the bare parked wake-up, no ring)
 *
 * Build: cc -O2 -Wall -Wextra -o ring scripts/ring.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* lib/layout.ts */
enum {
  HEADER_BYTES = 640, /* 64 * (6 + 2 * 2 slots) */
  PRODUCER_POSITION_OFFSET = 128,
  CONSUMER_POSITION_OFFSET = 256,
  CONSUMER_WAITING_OFFSET = 392, /* slot 0 at 384: +8 waiting, +12 doorbell */
  CONSUMER_DOORBELL_OFFSET = 396,
  PRODUCER_WAITING_OFFSET = 520, /* slot 1 at 512 */
  PRODUCER_DOORBELL_OFFSET = 524,
  FRAME_HEADER_BYTES = 8,
  FRAME_ALIGNMENT = 8,
  FRAME_MESSAGE = 1,
  FRAME_PADDING = 2,
  PRODUCER_SLOT = 1,
  WAITING_NONE = 0,
  WAITING_FUTEX = 1,
};

/* type words (bytes 4-7 of a frame): tag | frame type << 16 | writer slot << 24 */
#define TYPE_WORD(frame_type) ((int32_t)((uint32_t)(frame_type) << 16 | (uint32_t)PRODUCER_SLOT << 24))
#define FRAME_TYPE_OF(type_word) (((uint32_t)(type_word) >> 16) & 0xff)

/*
 * Bench-only words, in bytes the layout reserves, all written by the consumer:
 * slot 0's reserved bytes (+24 to +64) and its counters line (+64 to +128).
 */
enum {
  BENCH_READY_OFFSET = 408, /* u32 (slot 0 +24): consumer is running */
  BENCH_END_OFFSET = 448,   /* u64 (slot 0 counters line): consumer's time from MARK to END, ns */
  BENCH_SUM_OFFSET = 456,   /* u64: consumer's checksum */
  BENCH_COUNT_OFFSET = 464, /* u64: messages the consumer handled */
};

typedef _Atomic uint32_t atomic_u32;

typedef struct {
  uint8_t *base; /* segment header */
  uint8_t *data; /* ring bytes */
  uint32_t capacity;
  uint32_t mask;
} ring_t;

typedef struct {
  uint32_t position;        /* bytes ever published */
  uint32_t cached_consumer; /* last consumer position read */
} producer_t;

typedef struct {
  uint32_t position; /* bytes ever released */
} consumer_t;

static inline atomic_u32 *word_at(const ring_t *r, size_t offset) {
  return (atomic_u32 *)(void *)(r->base + offset);
}

static inline uint32_t frame_bytes(uint32_t length) {
  return (length + FRAME_HEADER_BYTES + FRAME_ALIGNMENT - 1) & ~(uint32_t)(FRAME_ALIGNMENT - 1);
}

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of this process and its reaped children, in ms (bench.mjs subtracts it from the machine's busy time). */
static double cpu_ms(void) {
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  const struct timeval *t[4] = {&self.ru_utime, &self.ru_stime, &children.ru_utime, &children.ru_stime};
  double ms = 0;
  for (int i = 0; i < 4; i++) ms += (double)t[i]->tv_sec * 1e3 + (double)t[i]->tv_usec / 1e3;
  return ms;
}

static void die(const char *what) {
  fprintf(stderr, "ring: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void *map_shared(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) die("mmap");
  memset(p, 0, bytes); /* fault every page in before timing */
  return p;
}

static void ring_init(ring_t *r, uint8_t *base, uint32_t capacity) {
  r->base = base;
  r->data = base + HEADER_BYTES;
  r->capacity = capacity;
  r->mask = capacity - 1;
}

/* ---- futex ---- */

static long futex_wait(atomic_u32 *word, uint32_t expected) {
  /* shared (not FUTEX_PRIVATE): the word lives in memory mapped by two processes */
  return syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, expected, NULL, NULL, 0);
}

static long futex_wake(atomic_u32 *word) {
  return syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* ---- producer ---- */

/* Returns 0 when the ring has no room for the frame (and its padding). */
static inline int try_write(const ring_t *r, producer_t *p, const void *msg, uint32_t length, int seq_cst_publish) {
  uint32_t fb = frame_bytes(length);
  uint32_t index = p->position & r->mask;
  uint32_t tail = r->capacity - index;
  uint32_t need = tail < fb ? tail + fb : fb;
  if ((uint32_t)(p->position - p->cached_consumer) + need > r->capacity) {
    /* looks full: only now re-read the consumer position */
    /* SYNC POINT: consumer's release of the bytes before its position */
    p->cached_consumer = atomic_load_explicit(word_at(r, CONSUMER_POSITION_OFFSET), memory_order_acquire);
    if ((uint32_t)(p->position - p->cached_consumer) + need > r->capacity) return 0;
  }
  uint32_t position = p->position;
  if (tail < fb) {
    int32_t *pad = (int32_t *)(void *)(r->data + index);
    pad[0] = (int32_t)(tail - FRAME_HEADER_BYTES);
    pad[1] = TYPE_WORD(FRAME_PADDING);
    position += tail;
    index = 0;
  }
  int32_t *frame = (int32_t *)(void *)(r->data + index);
  memcpy(frame + 2, msg, length);
  frame[0] = (int32_t)length;
  frame[1] = TYPE_WORD(FRAME_MESSAGE);
  position += fb;
  p->position = position;
  /* SYNC POINT: frame header and payload visible to the consumer */
  if (seq_cst_publish)
    atomic_store_explicit(word_at(r, PRODUCER_POSITION_OFFSET), position, memory_order_seq_cst);
  else
    atomic_store_explicit(word_at(r, PRODUCER_POSITION_OFFSET), position, memory_order_release);
  return 1;
}

/* ---- consumer ---- */

/*
 * Throughput streams carry two control messages, told apart from data by their
 * length (as in scripts/bench/common.mjs): MARK ends the warm-up, END ends the
 * stream; the rate counts data messages from MARK to END.
 */
enum { END_LENGTH = 1, MARK_LENGTH = 2, CONTROL_MAX = 3 };

typedef struct {
  uint8_t *out; /* copy destination */
  uint64_t sum;
  uint64_t count; /* data messages since MARK */
  uint64_t t_mark, t_end;
  int done;
} sink_t;

static inline void handle(sink_t *s, const uint8_t *payload, uint32_t length) {
  if (length <= CONTROL_MAX) {
    if (length == MARK_LENGTH) {
      s->t_mark = now_ns();
      s->count = 0;
    } else {
      s->t_end = now_ns();
      s->done = 1;
    }
    return;
  }
  memcpy(s->out, payload, length);
  __asm__ volatile("" : : "r"(s->out) : "memory"); /* the copy is observable */
  s->sum += s->out[0] + s->out[length - 1];
  s->count++;
}

/* Handles every frame published so far, then releases them with one store. */
static inline uint32_t drain(const ring_t *r, consumer_t *c, sink_t *s, uint32_t limit) {
  /* SYNC POINT: producer's frames up to its position */
  uint32_t end = atomic_load_explicit(word_at(r, PRODUCER_POSITION_OFFSET), memory_order_acquire);
  uint32_t position = c->position;
  uint32_t n = 0;
  while (position != end && n < limit) {
    uint32_t index = position & r->mask;
    const int32_t *frame = (const int32_t *)(const void *)(r->data + index);
    uint32_t length = (uint32_t)frame[0];
    uint32_t fb = frame_bytes(length);
    if (length > r->capacity - index - FRAME_HEADER_BYTES) {
      fprintf(stderr, "ring: bad frame length %u at index %u\n", length, index);
      exit(1);
    }
    if (FRAME_TYPE_OF(frame[1]) == FRAME_MESSAGE) {
      handle(s, (const uint8_t *)(frame + 2), length);
      n++;
    }
    position += fb;
  }
  if (position != c->position) {
    c->position = position;
    /* SYNC POINT: released bytes may be overwritten by the producer */
    atomic_store_explicit(word_at(r, CONSUMER_POSITION_OFFSET), position, memory_order_release);
  }
  return n;
}

/* ---- parking on a doorbell (futex) ---- */

/* Consumer side: park until the producer position moves past ours. */
static void park_until_data(const ring_t *r, const consumer_t *c) {
  atomic_u32 *produced = word_at(r, PRODUCER_POSITION_OFFSET);
  atomic_u32 *waiting = word_at(r, CONSUMER_WAITING_OFFSET);
  atomic_u32 *doorbell = word_at(r, CONSUMER_DOORBELL_OFFSET);
  for (;;) {
    if (atomic_load_explicit(produced, memory_order_acquire) != c->position) return;
    uint32_t bell = atomic_load_explicit(doorbell, memory_order_acquire);
    /* announce, then re-check: the producer either sees the flag or we see its data */
    atomic_store_explicit(waiting, WAITING_FUTEX, memory_order_seq_cst);
    if (atomic_load_explicit(produced, memory_order_seq_cst) != c->position) {
      atomic_store_explicit(waiting, WAITING_NONE, memory_order_relaxed);
      return;
    }
    futex_wait(doorbell, bell); /* EAGAIN if the bell already rang */
    atomic_store_explicit(waiting, WAITING_NONE, memory_order_relaxed);
  }
}

/* Producer side, after a seq_cst publish: ring the bell only if the consumer parked. */
static inline void wake_consumer(const ring_t *r) {
  if (atomic_load_explicit(word_at(r, CONSUMER_WAITING_OFFSET), memory_order_seq_cst) != WAITING_NONE) {
    atomic_fetch_add_explicit(word_at(r, CONSUMER_DOORBELL_OFFSET), 1, memory_order_seq_cst);
    futex_wake(word_at(r, CONSUMER_DOORBELL_OFFSET));
  }
}

/* ---- statistics ---- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void print_rtt(const char *mode, uint64_t *samples, size_t count, size_t warmup) {
  double mean = 0;
  for (size_t i = 0; i < count; i++) mean += (double)samples[i];
  mean /= (double)count;
  qsort(samples, count, sizeof samples[0], cmp_u64);
  printf("{\"mode\":\"%s\",\"count\":%zu,\"warmup\":%zu,\"medianUs\":%.4f,\"p90Us\":%.4f,\"p99Us\":%.4f,\"p999Us\":%.4f,"
         "\"maxUs\":%.4f,\"minUs\":%.4f,\"meanUs\":%.4f,\"cpuMs\":%.3f}\n",
         mode, count, warmup, samples[count / 2] / 1e3, samples[(size_t)(count * 0.9)] / 1e3, samples[(size_t)(count * 0.99)] / 1e3,
         samples[(size_t)(count * 0.999)] / 1e3, samples[count - 1] / 1e3, samples[0] / 1e3, mean / 1e3, cpu_ms());
}

static pid_t fork_or_die(void) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a killed parent */
  return pid;
}

static int wait_child(pid_t pid) {
  int status;
  if (waitpid(pid, &status, 0) < 0) die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "ring: child failed (status %d)\n", status);
    return 1;
  }
  return 0;
}

/* ---- modes ---- */

/* Writes up to `limit` messages, checking the clock between chunks; stops past `deadline` (0: none). */
static uint64_t stream(const ring_t *r, producer_t *p, const uint8_t *msg, uint32_t size, uint64_t limit, uint64_t deadline) {
  uint64_t chunk = (4u << 20) / size;
  chunk = chunk < 16 ? 16 : chunk > 4096 ? 4096 : chunk;
  uint64_t sent = 0;
  while (sent < limit) {
    uint64_t n = limit - sent < chunk ? limit - sent : chunk;
    for (uint64_t i = 0; i < n; i++) {
      while (!try_write(r, p, msg, size, 0)) cpu_relax();
    }
    sent += n;
    if (deadline && now_ns() >= deadline) break;
  }
  return sent;
}

/* Producer (parent) and consumer (child): warm-up for warm_ms, MARK, `count` messages or max_ms, END. */
static int run_throughput(uint32_t msg_size, uint64_t count, uint32_t capacity, uint64_t max_ms, uint64_t warm_ms) {
  if (capacity < 1024 || (capacity & (capacity - 1)) || msg_size > capacity / 2 - FRAME_HEADER_BYTES) {
    fprintf(stderr, "ring: bad capacity %u for message size %u\n", capacity, msg_size);
    return 2;
  }
  if (msg_size <= CONTROL_MAX) {
    fprintf(stderr, "ring: messages must be longer than %d bytes (shorter ones are control messages)\n", CONTROL_MAX);
    return 2;
  }
  uint8_t *base = map_shared(HEADER_BYTES + (size_t)capacity);
  ring_t ring;
  ring_init(&ring, base, capacity);
  atomic_u32 *ready = word_at(&ring, BENCH_READY_OFFSET);

  pid_t pid = fork_or_die();
  if (pid == 0) { /* consumer */
    sink_t sink = {.out = malloc(msg_size)};
    consumer_t c = {0};
    atomic_store(ready, 1);
    while (!sink.done) {
      if (drain(&ring, &c, &sink, UINT32_MAX) == 0) cpu_relax();
    }
    uint64_t seconds_ns = sink.t_end - sink.t_mark;
    memcpy(base + BENCH_END_OFFSET, &seconds_ns, 8);
    memcpy(base + BENCH_SUM_OFFSET, &sink.sum, 8);
    memcpy(base + BENCH_COUNT_OFFSET, &sink.count, 8);
    atomic_thread_fence(memory_order_seq_cst);
    _exit(0);
  }
  /* producer */
  uint8_t *msg = malloc(msg_size);
  for (uint32_t i = 0; i < msg_size; i++) msg[i] = (uint8_t)i;
  static const uint8_t control[CONTROL_MAX] = {0};
  producer_t p = {0, 0};
  while (atomic_load(ready) == 0) cpu_relax();
  if (warm_ms) stream(&ring, &p, msg, msg_size, UINT64_MAX, now_ns() + warm_ms * 1000000u);
  while (!try_write(&ring, &p, control, MARK_LENGTH, 0)) cpu_relax();
  uint64_t sent = stream(&ring, &p, msg, msg_size, count, max_ms ? now_ns() + max_ms * 1000000u : 0);
  while (!try_write(&ring, &p, control, END_LENGTH, 0)) cpu_relax();
  if (wait_child(pid)) return 1;
  uint64_t elapsed_ns, sum, got;
  memcpy(&elapsed_ns, base + BENCH_END_OFFSET, 8);
  memcpy(&sum, base + BENCH_SUM_OFFSET, 8);
  memcpy(&got, base + BENCH_COUNT_OFFSET, 8);
  if (got != sent) {
    fprintf(stderr, "ring: sent %llu messages, %llu arrived\n", (unsigned long long)sent, (unsigned long long)got);
    return 1;
  }
  double seconds = (double)elapsed_ns / 1e9;
  printf("{\"mode\":\"throughput\",\"msgSize\":%u,\"count\":%llu,\"capacity\":%u,\"seconds\":%.6f,"
         "\"msgsPerSec\":%.1f,\"gbPerSec\":%.4f,\"checksum\":%llu,\"cpuMs\":%.3f}\n",
         msg_size, (unsigned long long)got, capacity, seconds, (double)got / seconds,
         (double)got * msg_size / seconds / 1e9, (unsigned long long)sum, cpu_ms());
  return 0;
}

enum { RTT_MSG = 64, RTT_CAPACITY = 1 << 16 };

/* Two rings in one mapping: ping (parent to child) and pong (child to parent). */
static int run_rtt_ring(int park, size_t count, size_t warmup) {
  size_t ring_bytes = HEADER_BYTES + RTT_CAPACITY;
  uint8_t *base = map_shared(2 * ring_bytes);
  ring_t ping, pong;
  ring_init(&ping, base, RTT_CAPACITY);
  ring_init(&pong, base + ring_bytes, RTT_CAPACITY);
  size_t total = count + warmup;
  uint8_t msg[RTT_MSG];
  for (int i = 0; i < RTT_MSG; i++) msg[i] = (uint8_t)i;

  pid_t pid = fork_or_die();
  if (pid == 0) { /* ponger: receive on ping, answer on pong */
    sink_t sink = {.out = malloc(RTT_MSG)};
    consumer_t c = {0};
    producer_t p = {0, 0};
    for (size_t i = 0; i < total; i++) {
      while (drain(&ping, &c, &sink, 1) == 0) {
        if (park) park_until_data(&ping, &c);
        else cpu_relax();
      }
      while (!try_write(&pong, &p, msg, RTT_MSG, park)) cpu_relax();
      if (park) wake_consumer(&pong);
    }
    _exit(0);
  }
  /* pinger */
  uint64_t *samples = malloc(count * sizeof *samples);
  sink_t sink = {.out = malloc(RTT_MSG)};
  consumer_t c = {0};
  producer_t p = {0, 0};
  for (size_t i = 0; i < total; i++) {
    uint64_t t0 = now_ns();
    while (!try_write(&ping, &p, msg, RTT_MSG, park)) cpu_relax();
    if (park) wake_consumer(&ping);
    while (drain(&pong, &c, &sink, 1) == 0) {
      if (park) park_until_data(&pong, &c);
      else cpu_relax();
    }
    uint64_t t1 = now_ns();
    if (i >= warmup) samples[i - warmup] = t1 - t0;
  }
  if (wait_child(pid)) return 1;
  print_rtt(park ? "rtt-futex" : "rtt-spin", samples, count, warmup);
  return 0;
}

static void efd_write(int fd) {
  uint64_t one = 1;
  if (write(fd, &one, 8) != 8) die("eventfd write");
}

static void efd_read(int fd) {
  uint64_t value;
  while (read(fd, &value, 8) != 8) {
    if (errno != EINTR) die("eventfd read");
  }
}

static int run_rtt_eventfd(size_t count, size_t warmup) {
  int to_child = eventfd(0, 0), to_parent = eventfd(0, 0); /* blocking */
  if (to_child < 0 || to_parent < 0) die("eventfd");
  size_t total = count + warmup;
  pid_t pid = fork_or_die();
  if (pid == 0) {
    for (size_t i = 0; i < total; i++) {
      efd_read(to_child);
      efd_write(to_parent);
    }
    _exit(0);
  }
  uint64_t *samples = malloc(count * sizeof *samples);
  for (size_t i = 0; i < total; i++) {
    uint64_t t0 = now_ns();
    efd_write(to_child);
    efd_read(to_parent);
    uint64_t t1 = now_ns();
    if (i >= warmup) samples[i - warmup] = t1 - t0;
  }
  if (wait_child(pid)) return 1;
  print_rtt("rtt-eventfd", samples, count, warmup);
  return 0;
}

static unsigned long long arg_u64(int argc, char **argv, int i, unsigned long long fallback) {
  if (i >= argc) return fallback;
  char *end;
  unsigned long long v = strtoull(argv[i], &end, 0);
  if (*end || end == argv[i]) {
    fprintf(stderr, "ring: not a number: %s\n", argv[i]);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  const char *usage =
      "usage: ring throughput <msgSize> <count> <capacity> [maxMs] [warmMs]\n"
      "       ring rtt-spin|rtt-futex|rtt-eventfd <count> [warmup]\n";
  if (argc < 3) {
    fputs(usage, stderr);
    return 2;
  }
  const char *mode = argv[1];
  if (!strcmp(mode, "throughput")) {
    if (argc < 5) {
      fputs(usage, stderr);
      return 2;
    }
    return run_throughput((uint32_t)arg_u64(argc, argv, 2, 64), arg_u64(argc, argv, 3, 0),
                          (uint32_t)arg_u64(argc, argv, 4, 1 << 22), arg_u64(argc, argv, 5, 0),
                          arg_u64(argc, argv, 6, 0));
  }
  size_t count = arg_u64(argc, argv, 2, 20000);
  size_t warmup = arg_u64(argc, argv, 3, count / 10);
  if (count == 0) {
    fputs("ring: count must be > 0\n", stderr);
    return 2;
  }
  if (!strcmp(mode, "rtt-spin")) return run_rtt_ring(0, count, warmup);
  if (!strcmp(mode, "rtt-futex")) return run_rtt_ring(1, count, warmup);
  if (!strcmp(mode, "rtt-eventfd")) return run_rtt_eventfd(count, warmup);
  fputs(usage, stderr);
  return 2;
}
