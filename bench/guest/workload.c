/*
 * heca guest workload: owns an arena of guest RAM, keeps every page of it
 * verifiable, rewrites pages of a working set at a given rate and pattern,
 * and talks to the host over the second serial port (/dev/ttyS1) in JSON
 * lines. Runs from the initramfs /init; static, no dependencies.
 *
 * Configuration (kernel command line, /proc/cmdline):
 *   heca.arena_mib=N     memory the workload owns and stamps (default 64)
 *   heca.ws_mib=N        working set written, <= arena (default = arena);
 *                        it is the *last* ws pages of the arena, so pages
 *                        below pages-ws_pages are stamped once and never
 *                        rewritten (the host can corrupt them deterministically)
 *   heca.rate=N          page writes per second, 0 = flat out (default 0)
 *   heca.pattern=P       sequential | random | hotcold (default random);
 *                        hotcold: 90% of writes go to the first 10% of the
 *                        working set, the rest to the other 90%
 *   heca.interval_ms=N   tick period (default 100)
 *   heca.seed=N          PRNG seed (default 1)
 *   heca.threads=N       writer threads (default 1, at most 64): each owns
 *                        1/N of the working set (a contiguous slice) and
 *                        writes it at rate/N with the pattern, on CPU
 *                        t mod (CPUs online); the main thread then only
 *                        talks to the host. A writer that waits for a page
 *                        (post-copy) stops no other writer.
 *
 * Every page holds a header {magic, index, generation, header checksum}
 * and 508 words derived from (index, generation, seed). A write bumps the
 * page's generation (kept in a table) and rewrites the whole page.
 *
 * Guest -> host (one JSON object per line):
 *   {"t":"ready",...}  once, after every page has been stamped
 *   {"t":"tick","seq":k,"ms":M,"interval_ms":x,"ops":n,"max_stall_us":s}
 *       every interval. max_stall_us: longest gap between two consecutive
 *       ops in the interval; with a rate limit, the lateness of an op
 *       against its schedule (time idle by design is not a stall; a
 *       writer thread sleeps until its op is due, so its lateness has a
 *       floor: the timer's slack and the guest's wake-up latency, which
 *       the one writer, spinning its last ms, does not have).
 *       With threads > 1 also "threads":[n0,n1,...] (each writer's ops;
 *       their sum is ops) and "stalls_us":[s0,s1,...] (each one's longest
 *       gap; max_stall_us is the largest).
 *   {"t":"slow","ms":M,"since_ms":m,"ops":n,"writes":[[lo_ns,count],...]}
 *       on the command `slow`: the page writes that took 65.5 us or more
 *       since the previous `slow` (or since ready), counted in buckets of a
 *       quarter octave by how long they took (lo_ns: a bucket's lower
 *       bound; the last bucket, from 60.1 s, holds everything longer);
 *       then counting restarts. A write that faults (post-copy) is one:
 *       the time the guest lost to the fault, as the guest sees it.
 *   {"t":"check",...} {"t":"where",...} {"t":"bye"} {"t":"error","msg":..}
 * Host -> guest (one command per line): check | where I | slow | quit
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096u
#define WORDS (PAGE_SIZE / 8u)
#define HDR_WORDS 4u
#define MAGIC 0x4845434150414745ull /* "HECAPAGE" */
#define K_STEP 0x9e3779b97f4a7c15ull
#define MAX_FIRST_BAD 16
#define CTL_DEV "/dev/ttyS1"
#define POLL_EVERY_NS 2000000ll /* look for host commands every 2 ms */
/*
 * Rate-limited, one writer: spin for the last 1 ms before an op, so that its
 * lateness measures the guest, not the timer. Writer threads sleep until
 * the op is due: their schedule absorbs a late wake-up (the next ops catch
 * up), and spinning threads would keep the vCPUs they share busy, hiding
 * what a vCPU halted on a fault costs the other thread on it.
 */
#define SPIN_NS 1000000ll
/* A writer thread sleeping until its next write looks for a pause request this often. */
#define PAUSE_SEEN_NS 10000000ll
#define MAX_THREADS 64

enum pattern { PAT_SEQUENTIAL, PAT_RANDOM, PAT_HOTCOLD };
static const char *const pattern_names[] = {"sequential", "random", "hotcold"};

struct config {
	uint64_t arena_mib, ws_mib, rate, interval_ms, seed, threads;
	enum pattern pattern;
	int ws_given;
};

static struct config cfg = {.arena_mib = 64, .rate = 0, .interval_ms = 100, .seed = 1, .threads = 1, .pattern = PAT_RANDOM};
static uint8_t *arena;
static uint32_t *gens;
static uint64_t npages, ws_pages, ws_first;
static int ctl = -1;
static uint64_t seed_salt;

/* ---- time --------------------------------------------------------------- */

static inline int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- output ------------------------------------------------------------- */

/* Write all of buf to the control port; never blocks for more than ~1 s. */
static void ctl_write(const char *buf, size_t len)
{
	int64_t give_up = now_ns() + 1000000000ll;
	while (len > 0 && ctl >= 0) {
		ssize_t n = write(ctl, buf, len);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN)
			return;
		int64_t left = give_up - now_ns();
		if (left <= 0)
			return; /* nobody is draining the port: drop the rest */
		struct pollfd p = {.fd = ctl, .events = POLLOUT};
		poll(&p, 1, (int)(left / 1000000 + 1));
	}
}

__attribute__((format(printf, 2, 3))) static void emit(int also_console, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof buf - 2)
		n = (int)(sizeof buf - 2);
	buf[n++] = '\n';
	ctl_write(buf, (size_t)n);
	if (also_console) {
		fputs("heca-workload: ", stdout);
		fwrite(buf, 1, (size_t)n, stdout);
		fflush(stdout);
	}
}

/* A JSON string body: keeps printable ASCII except quote and backslash. */
static void json_safe(char *dst, size_t cap, const char *src)
{
	size_t j = 0;
	for (; *src && j + 1 < cap; src++)
		dst[j++] = (*src >= 0x20 && *src < 0x7f && *src != '"' && *src != '\\') ? *src : '?';
	dst[j] = 0;
}

static void fatal(const char *fmt, ...)
{
	char msg[512], safe[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_safe(safe, sizeof safe, msg);
	emit(1, "{\"t\":\"error\",\"fatal\":true,\"msg\":\"%s\"}", safe);
	exit(1);
}

/* ---- pages -------------------------------------------------------------- */

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static inline uint64_t page_base(uint64_t idx, uint32_t gen)
{
	return mix64(idx * 0xd6e8feb86659fd93ull ^ ((uint64_t)gen << 40) ^ (uint64_t)gen ^ seed_salt);
}

static inline uint64_t header_sum(uint64_t idx, uint32_t gen)
{
	return mix64(MAGIC ^ mix64(idx) ^ ((uint64_t)gen * K_STEP));
}

static void write_page(uint64_t idx, uint32_t gen)
{
	uint64_t *p = (uint64_t *)(arena + idx * PAGE_SIZE);
	uint64_t v = page_base(idx, gen);
	p[0] = MAGIC;
	p[1] = idx;
	p[2] = gen;
	p[3] = header_sum(idx, gen);
	for (unsigned w = HDR_WORDS; w < WORDS; w++) {
		v += K_STEP;
		p[w] = v;
	}
}

static int page_ok(uint64_t idx)
{
	const uint64_t *p = (const uint64_t *)(arena + idx * PAGE_SIZE);
	uint32_t gen = gens[idx];
	if (p[0] != MAGIC || p[1] != idx || p[2] != gen || p[3] != header_sum(idx, gen))
		return 0;
	uint64_t v = page_base(idx, gen), diff = 0;
	for (unsigned w = HDR_WORDS; w < WORDS; w++) {
		v += K_STEP;
		diff |= p[w] ^ v;
	}
	return diff == 0;
}

/* ---- configuration ------------------------------------------------------ */

static uint64_t parse_num(const char *key, const char *val)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(val, &end, 10);
	if (errno || end == val || *end || val[0] == '-')
		fatal("heca.%s=%s is not a non-negative integer", key, val);
	return (uint64_t)v;
}

static void read_config(void)
{
	char line[4096];
	FILE *f = fopen("/proc/cmdline", "r");
	if (!f)
		fatal("cannot open /proc/cmdline: %s", strerror(errno));
	size_t n = fread(line, 1, sizeof line - 1, f);
	fclose(f);
	line[n] = 0;
	for (char *save = NULL, *tok = strtok_r(line, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(tok, "heca.", 5) != 0)
			continue;
		char *key = tok + 5, *eq = strchr(key, '=');
		if (!eq)
			fatal("kernel parameter %s has no value", tok);
		*eq = 0;
		const char *val = eq + 1;
		if (!strcmp(key, "arena_mib"))
			cfg.arena_mib = parse_num(key, val);
		else if (!strcmp(key, "ws_mib"))
			cfg.ws_mib = parse_num(key, val), cfg.ws_given = 1;
		else if (!strcmp(key, "rate"))
			cfg.rate = parse_num(key, val);
		else if (!strcmp(key, "interval_ms"))
			cfg.interval_ms = parse_num(key, val);
		else if (!strcmp(key, "seed"))
			cfg.seed = parse_num(key, val);
		else if (!strcmp(key, "threads"))
			cfg.threads = parse_num(key, val);
		else if (!strcmp(key, "pattern")) {
			unsigned i;
			for (i = 0; i < 3 && strcmp(val, pattern_names[i]); i++)
				;
			if (i == 3)
				fatal("heca.pattern=%s: use sequential, random or hotcold", val);
			cfg.pattern = (enum pattern)i;
		} else
			fatal("unknown kernel parameter heca.%s", key);
	}
	if (!cfg.ws_given)
		cfg.ws_mib = cfg.arena_mib;
	if (cfg.arena_mib < 1 || cfg.arena_mib > (1u << 20))
		fatal("heca.arena_mib=%" PRIu64 " out of range 1..1048576", cfg.arena_mib);
	if (cfg.ws_mib < 1 || cfg.ws_mib > cfg.arena_mib)
		fatal("heca.ws_mib=%" PRIu64 " must be 1..arena_mib (%" PRIu64 ")", cfg.ws_mib, cfg.arena_mib);
	if (cfg.interval_ms < 1 || cfg.interval_ms > 60000)
		fatal("heca.interval_ms=%" PRIu64 " out of range 1..60000", cfg.interval_ms);
	if (cfg.rate > 100000000)
		fatal("heca.rate=%" PRIu64 " is absurd", cfg.rate);
	if (cfg.threads < 1 || cfg.threads > MAX_THREADS)
		fatal("heca.threads=%" PRIu64 " out of range 1..%d", cfg.threads, MAX_THREADS);
	if (cfg.threads > cfg.ws_mib * (1024 * 1024 / PAGE_SIZE))
		fatal("heca.threads=%" PRIu64 " is more than the working set's pages", cfg.threads);
}

/* ---- control channel ---------------------------------------------------- */

static void open_ctl(void)
{
	ctl = open(CTL_DEV, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (ctl < 0) {
		fprintf(stderr, "heca-workload: cannot open %s: %s\n", CTL_DEV, strerror(errno));
		exit(1);
	}
	struct termios t;
	if (tcgetattr(ctl, &t) == 0) {
		cfmakeraw(&t);
		t.c_cflag |= CLOCAL | CREAD;
		t.c_cflag &= ~(tcflag_t)HUPCL;
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		cfsetispeed(&t, B115200);
		cfsetospeed(&t, B115200);
		tcsetattr(ctl, TCSANOW, &t);
		tcflush(ctl, TCIOFLUSH);
	}
}

static char cmdbuf[256];
static size_t cmdlen;
static int cmd_overflow;

static void do_command(char *line);

/* Read what the host sent; run every complete line. Returns without waiting. */
static void poll_commands(void)
{
	char buf[256];
	for (;;) {
		ssize_t n = read(ctl, buf, sizeof buf);
		if (n <= 0)
			return;
		for (ssize_t i = 0; i < n; i++) {
			char c = buf[i];
			if (c == '\n' || c == '\r') {
				if (cmd_overflow)
					emit(0, "{\"t\":\"error\",\"msg\":\"command too long\"}");
				else if (cmdlen > 0) {
					cmdbuf[cmdlen] = 0;
					do_command(cmdbuf);
				}
				cmdlen = 0;
				cmd_overflow = 0;
			} else if (cmdlen + 1 < sizeof cmdbuf) {
				cmdbuf[cmdlen++] = c;
			} else {
				cmd_overflow = 1;
			}
		}
	}
}

/* ---- the run loop state ------------------------------------------------- */

/*
 * A writer: one thread writing its slice of the working set (all of it
 * when there is one writer, which is then the main thread). Its ops count
 * and longest gap are read by the main thread for the ticks.
 */
struct writer {
	uint64_t first, pages, hot; /* its slice: [first, first + pages) */
	uint64_t rng_state, seq_cursor;
	int64_t period_ns, sched_due, prev_op;
	uint64_t ops;      /* ever: atomic (the main thread reads it) */
	int64_t max_stall; /* since the last tick: atomic (the main thread takes it) */
	uint64_t ops_at_tick;
	int cpu;
	pthread_t tid;
} __attribute__((aligned(64))); /* its own cache lines: every write updates ops */
static struct writer writers[MAX_THREADS];

static uint64_t tick_seq;
static int64_t tick_start, next_tick;

/* With threads > 1: the main thread stops the writers for a command (check). */
static int pause_req, paused;

/*
 * Page writes that took 2^16 ns (65.5 us) or more, in quarter-octave
 * buckets by duration: v = ns >> 14 units (v >= 4) with highest bit o + 2
 * and the two bits below it f falls in bucket 4 * o + f, [(4 + f) << (o +
 * 14), (5 + f) << (o + 14)) ns. Counted by every writer (atomics).
 */
#define SLOW_SHIFT 14
#define SLOW_BUCKETS 80
static uint64_t slow[SLOW_BUCKETS], slow_ops;
static int64_t slow_since;

static void count_write(int64_t ns)
{
	__atomic_fetch_add(&slow_ops, 1, __ATOMIC_RELAXED);
	if (ns < 0)
		return;
	uint64_t v = (uint64_t)ns >> SLOW_SHIFT;
	if (v < 4)
		return;
	int o = 63 - __builtin_clzll(v) - 2;
	unsigned b = (unsigned)o * 4 + (unsigned)(v >> o & 3);
	__atomic_fetch_add(&slow[b < SLOW_BUCKETS ? b : SLOW_BUCKETS - 1], 1, __ATOMIC_RELAXED);
}

static uint64_t slow_bucket_lo(unsigned b)
{
	return (uint64_t)(4 + b % 4) << (b / 4 + SLOW_SHIFT);
}

static void emit_tick(int64_t now)
{
	char per[MAX_THREADS * 24 + 2], stalls[MAX_THREADS * 24 + 2];
	size_t po = 0, so = 0;
	uint64_t ops = 0;
	int64_t max_stall = 0;
	for (uint64_t t = 0; t < cfg.threads; t++) {
		struct writer *w = &writers[t];
		uint64_t total = __atomic_load_n(&w->ops, __ATOMIC_RELAXED);
		int64_t stall = __atomic_exchange_n(&w->max_stall, 0, __ATOMIC_RELAXED);
		uint64_t n = total - w->ops_at_tick;
		w->ops_at_tick = total;
		ops += n;
		if (stall > max_stall)
			max_stall = stall;
		po += (size_t)snprintf(per + po, sizeof per - po, "%s%" PRIu64, t ? "," : "", n);
		so += (size_t)snprintf(stalls + so, sizeof stalls - so, "%s%" PRId64, t ? "," : "", stall / 1000);
	}
	char line[sizeof per + sizeof stalls + 200];
	int n;
	if (cfg.threads > 1)
		n = snprintf(line, sizeof line,
			     "{\"t\":\"tick\",\"seq\":%" PRIu64 ",\"ms\":%.3f,\"interval_ms\":%.3f,\"ops\":%" PRIu64 ",\"max_stall_us\":%" PRId64
			     ",\"threads\":[%s],\"stalls_us\":[%s]}\n",
			     tick_seq, (double)now / 1e6, (double)(now - tick_start) / 1e6, ops, max_stall / 1000, per, stalls);
	else
		n = snprintf(line, sizeof line,
			     "{\"t\":\"tick\",\"seq\":%" PRIu64 ",\"ms\":%.3f,\"interval_ms\":%.3f,\"ops\":%" PRIu64 ",\"max_stall_us\":%" PRId64 "}\n",
			     tick_seq, (double)now / 1e6, (double)(now - tick_start) / 1e6, ops, max_stall / 1000);
	if (n > 0)
		ctl_write(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	tick_seq++;
	tick_start = now;
	next_tick += (int64_t)cfg.interval_ms * 1000000ll;
	if (next_tick <= now) /* we were away (paused VM): realign, no burst of empty ticks */
		next_tick = now + (int64_t)cfg.interval_ms * 1000000ll;
}

/* A writer's gaps restart now (it was stopped by design). */
static void writer_restart(struct writer *w, int64_t now)
{
	w->prev_op = now;
	if (w->sched_due < now)
		w->sched_due = now;
}

/* A command stopped the writes by design: close the interval before it and
 * start a fresh one after it, so neither a stall nor a long interval shows.
 * With writer threads, they wait meanwhile. */
static int64_t pause_begin(void)
{
	if (cfg.threads > 1) {
		__atomic_store_n(&pause_req, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&paused, __ATOMIC_SEQ_CST) < (int)cfg.threads) {
			struct timespec ts = {.tv_nsec = 1000000};
			nanosleep(&ts, NULL);
		}
	}
	int64_t now = now_ns();
	if (writers[0].ops != writers[0].ops_at_tick || cfg.threads > 1 || now - tick_start > 1000000)
		emit_tick(now);
	return now;
}

static void pause_end(void)
{
	int64_t now = now_ns();
	tick_start = now;
	next_tick = now + (int64_t)cfg.interval_ms * 1000000ll;
	if (cfg.threads > 1)
		__atomic_store_n(&pause_req, 0, __ATOMIC_SEQ_CST);
	else
		writer_restart(&writers[0], now);
}

static void cmd_check(void)
{
	int64_t t0 = pause_begin();
	uint64_t bad = 0, first[MAX_FIRST_BAD];
	for (uint64_t i = 0; i < npages; i++)
		if (!page_ok(i)) {
			if (bad < MAX_FIRST_BAD)
				first[bad] = i;
			bad++;
		}
	int64_t t1 = now_ns();
	char list[MAX_FIRST_BAD * 22 + 2];
	size_t off = 0;
	for (uint64_t i = 0; i < bad && i < MAX_FIRST_BAD; i++)
		off += (size_t)snprintf(list + off, sizeof list - off, "%s%" PRIu64, i ? "," : "", first[i]);
	list[off] = 0;
	emit(1, "{\"t\":\"check\",\"pages_checked\":%" PRIu64 ",\"bad_pages\":%" PRIu64 ",\"first_bad\":[%s],\"ms\":%.3f}", npages, bad,
	     list, (double)(t1 - t0) / 1e6);
	pause_end();
}

static void cmd_where(const char *arg)
{
	char *end;
	errno = 0;
	unsigned long long idx = strtoull(arg, &end, 10);
	while (*end == ' ')
		end++;
	if (errno || end == arg || *end || arg[0] == '-' || idx >= npages) {
		char safe[64];
		json_safe(safe, sizeof safe, arg);
		emit(0, "{\"t\":\"error\",\"msg\":\"where: page index '%s' is not in 0..%" PRIu64 "\"}", safe, npages - 1);
		return;
	}
	uint64_t entry = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uintptr_t va = (uintptr_t)(arena + idx * PAGE_SIZE);
	ssize_t n = fd < 0 ? -1 : pread(fd, &entry, sizeof entry, (off_t)(va / PAGE_SIZE * sizeof entry));
	int err = errno;
	if (fd >= 0)
		close(fd);
	if (n != (ssize_t)sizeof entry) {
		emit(0, "{\"t\":\"error\",\"msg\":\"where: cannot read /proc/self/pagemap: %s\"}", strerror(err));
		return;
	}
	if (!(entry >> 63 & 1)) {
		emit(0, "{\"t\":\"error\",\"msg\":\"where: page %llu is not present\"}", idx);
		return;
	}
	uint64_t pfn = entry & ((1ull << 55) - 1);
	if (pfn == 0) {
		emit(0, "{\"t\":\"error\",\"msg\":\"where: pagemap hides the PFN (not root?)\"}");
		return;
	}
	emit(0, "{\"t\":\"where\",\"page\":%llu,\"gpa\":%" PRIu64 "}", idx, pfn * PAGE_SIZE);
}

static void cmd_slow(void)
{
	char list[SLOW_BUCKETS * 32 + 1];
	size_t off = 0;
	for (unsigned b = 0; b < SLOW_BUCKETS; b++) {
		uint64_t n = __atomic_exchange_n(&slow[b], 0, __ATOMIC_RELAXED);
		if (n && off < sizeof list)
			off += (size_t)snprintf(list + off, sizeof list - off, "%s[%" PRIu64 ",%" PRIu64 "]", off ? "," : "",
						slow_bucket_lo(b), n);
	}
	list[off < sizeof list ? off : sizeof list - 1] = 0;
	int64_t now = now_ns();
	/* Longer than emit()'s line: written as it is. */
	char line[sizeof list + 160];
	int n = snprintf(line, sizeof line, "{\"t\":\"slow\",\"ms\":%.3f,\"since_ms\":%.3f,\"ops\":%" PRIu64 ",\"writes\":[%s]}\n",
			 (double)now / 1e6, (double)slow_since / 1e6, __atomic_exchange_n(&slow_ops, 0, __ATOMIC_RELAXED), list);
	if (n > 0)
		ctl_write(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	slow_since = now;
}

static void do_command(char *line)
{
	while (*line == ' ' || *line == '\t')
		line++;
	size_t n = strlen(line);
	while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
		line[--n] = 0;
	if (!strcmp(line, "check"))
		cmd_check();
	else if (!strncmp(line, "where ", 6))
		cmd_where(line + 6);
	else if (!strcmp(line, "slow"))
		cmd_slow();
	else if (!strcmp(line, "quit")) {
		emit(1, "{\"t\":\"bye\"}");
		tcdrain(ctl);
		exit(0);
	} else {
		char safe[128];
		json_safe(safe, sizeof safe, line);
		emit(0, "{\"t\":\"error\",\"msg\":\"unknown command: %s\"}", safe);
	}
}

/* ---- writers ------------------------------------------------------------ */

/* xorshift64* */
static inline uint64_t rng(struct writer *w)
{
	w->rng_state ^= w->rng_state >> 12;
	w->rng_state ^= w->rng_state << 25;
	w->rng_state ^= w->rng_state >> 27;
	return w->rng_state * 0x2545f4914f6cdd1dull;
}
static inline uint64_t below(struct writer *w, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng(w) * n) >> 64);
}

static inline uint64_t next_page(struct writer *w)
{
	switch (cfg.pattern) {
	case PAT_SEQUENTIAL:
		if (w->seq_cursor >= w->pages)
			w->seq_cursor = 0;
		return w->first + w->seq_cursor++;
	case PAT_HOTCOLD:
		if (w->pages > w->hot && below(w, 10) == 0)
			return w->first + w->hot + below(w, w->pages - w->hot);
		return w->first + below(w, w->hot);
	case PAT_RANDOM:
	default:
		return w->first + below(w, w->pages);
	}
}

/* The seed's effect on page contents, and on which pages each writer writes. */
static void set_seed(uint64_t seed)
{
	seed_salt = mix64(seed ^ 0x6865636100000000ull);
	for (uint64_t t = 0; t < cfg.threads; t++)
		writers[t].rng_state = mix64(seed + 1 + t * K_STEP) | 1;
}

/* Writer t's slice of the working set, its rate and CPU. */
static void writer_init(uint64_t t, int64_t now, long cpus)
{
	struct writer *w = &writers[t];
	uint64_t lo = ws_pages * t / cfg.threads, hi = ws_pages * (t + 1) / cfg.threads;
	w->first = ws_first + lo;
	w->pages = hi - lo;
	w->hot = w->pages / 10 ? w->pages / 10 : 1;
	w->period_ns = cfg.rate ? 1000000000ll * (int64_t)cfg.threads / (int64_t)cfg.rate : 0;
	w->prev_op = w->sched_due = now;
	w->cpu = cpus > 0 ? (int)(t % (uint64_t)cpus) : 0;
}

/*
 * Write one page if it is due. Returns 0 when the writer is ahead of its
 * schedule (rate-limited): *wait_until is then when to look again.
 */
static int writer_op(struct writer *w, int64_t now, int64_t *wait_until)
{
	if (w->period_ns && now < w->sched_due) {
		*wait_until = w->sched_due - (cfg.threads > 1 ? 0 : SPIN_NS);
		return 0;
	}
	/* The gap before this op; with a schedule, only its lateness. */
	int64_t since = w->period_ns && w->sched_due > w->prev_op ? w->sched_due : w->prev_op;
	int64_t gap = now - since, seen = __atomic_load_n(&w->max_stall, __ATOMIC_RELAXED);
	/* Against the main thread's reset at each tick: a stall is never lost */
	while (gap > seen && !__atomic_compare_exchange_n(&w->max_stall, &seen, gap, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;

	uint64_t idx = next_page(w);
	write_page(idx, ++gens[idx]);
	/* How long this write took: a fault on its page (or on gens[]) included. */
	count_write(now_ns() - now);
	__atomic_store_n(&w->ops, w->ops + 1, __ATOMIC_RELAXED);
	w->prev_op = now;

	if (w->period_ns) {
		w->sched_due += w->period_ns;
		/* More than an interval behind (the VM was paused): skip the
		 * missed ops instead of bursting to catch up. */
		if (now - w->sched_due > (int64_t)cfg.interval_ms * 1000000ll)
			w->sched_due = now + w->period_ns;
	}
	return 1;
}

static void sleep_until(int64_t until)
{
	int64_t wait = until - now_ns();
	if (wait > 0) {
		struct timespec ts = {.tv_sec = wait / 1000000000ll, .tv_nsec = wait % 1000000000ll};
		nanosleep(&ts, NULL);
	}
}

/* A writer thread (threads > 1): writes its slice until the process ends. */
static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(w->cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof set, &set);
	for (;;) {
		if (__atomic_load_n(&pause_req, __ATOMIC_SEQ_CST)) {
			__atomic_fetch_add(&paused, 1, __ATOMIC_SEQ_CST);
			while (__atomic_load_n(&pause_req, __ATOMIC_SEQ_CST)) {
				struct timespec ts = {.tv_nsec = 1000000};
				nanosleep(&ts, NULL);
			}
			__atomic_fetch_sub(&paused, 1, __ATOMIC_SEQ_CST);
			writer_restart(w, now_ns());
			/* Counted as paused until the line above: a new request may have come meanwhile */
			continue;
		}
		int64_t until, now = now_ns();
		if (!writer_op(w, now, &until))
			/* Rate-limited: a pause request is seen within PAUSE_SEEN_NS */
			sleep_until(until < now + PAUSE_SEEN_NS ? until : now + PAUSE_SEEN_NS);
	}
	return NULL;
}

/* The main thread with writer threads: ticks and the host's commands only. */
static void control_loop(void)
{
	for (;;) {
		int64_t now = now_ns();
		if (now >= next_tick)
			emit_tick(now);
		int64_t wait = next_tick - now_ns();
		struct timespec ts = {.tv_sec = wait > 0 ? wait / 1000000000ll : 0, .tv_nsec = wait > 0 ? wait % 1000000000ll : 0};
		struct pollfd p = {.fd = ctl, .events = POLLIN};
		if (ppoll(&p, 1, &ts, NULL) > 0)
			poll_commands();
	}
}

/* One writer, the main thread: writes, ticks and the host's commands in one loop. */
static void single_loop(void)
{
	struct writer *w = &writers[0];
	int64_t next_poll = now_ns();
	for (;;) {
		int64_t now = now_ns(), until;
		if (!writer_op(w, now, &until)) {
			/* Ahead of schedule: sleep until shortly before the op is due
			 * (or the next tick, or a host command), then spin, so that a
			 * late wake-up does not count as a stall. */
			if (now >= next_tick)
				emit_tick(now);
			if (now >= next_poll) {
				poll_commands();
				next_poll = now_ns() + POLL_EVERY_NS;
			}
			if (until > next_tick)
				until = next_tick;
			int64_t wait = until - now;
			if (wait > 0) {
				struct timespec ts = {.tv_sec = wait / 1000000000ll, .tv_nsec = wait % 1000000000ll};
				struct pollfd p = {.fd = ctl, .events = POLLIN};
				if (ppoll(&p, 1, &ts, NULL) > 0)
					poll_commands();
			}
			continue;
		}
		if (now >= next_tick)
			emit_tick(now);
		if (now >= next_poll) {
			poll_commands();
			next_poll = now_ns() + POLL_EVERY_NS;
		}
	}
}

/* ---- main --------------------------------------------------------------- */

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	open_ctl();
	read_config();

	npages = cfg.arena_mib * (1024 * 1024 / PAGE_SIZE);
	ws_pages = cfg.ws_mib * (1024 * 1024 / PAGE_SIZE);
	ws_first = npages - ws_pages;
	set_seed(cfg.seed);

	int64_t t0 = now_ns();
	size_t bytes = (size_t)(npages * PAGE_SIZE);
	arena = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (arena == MAP_FAILED)
		fatal("mmap of %" PRIu64 " MiB arena failed: %s", cfg.arena_mib, strerror(errno));
	/* 4 KiB pages that stay put: `where` must keep naming the page's frame. */
	madvise(arena, bytes, MADV_NOHUGEPAGE);
	if (mlock(arena, bytes) != 0)
		fprintf(stderr, "heca-workload: mlock failed (%s): pages may move\n", strerror(errno));
	gens = calloc(npages, sizeof *gens);
	if (!gens)
		fatal("cannot allocate the generation table (%" PRIu64 " pages)", npages);
	for (uint64_t i = 0; i < npages; i++)
		write_page(i, 0);
	int64_t t1 = now_ns();
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	emit(1,
	     "{\"t\":\"ready\",\"pages\":%" PRIu64 ",\"page_size\":%u,\"arena_mib\":%" PRIu64 ",\"ws_mib\":%" PRIu64
	     ",\"ws_first_page\":%" PRIu64 ",\"pattern\":\"%s\",\"rate\":%" PRIu64 ",\"interval_ms\":%" PRIu64 ",\"seed\":%" PRIu64
	     ",\"threads\":%" PRIu64 ",\"cpus\":%ld,\"stamp_ms\":%.3f,\"ms\":%.3f}",
	     npages, PAGE_SIZE, cfg.arena_mib, cfg.ws_mib, ws_first, pattern_names[cfg.pattern], cfg.rate, cfg.interval_ms, cfg.seed,
	     cfg.threads, cpus, (double)(t1 - t0) / 1e6, (double)t1 / 1e6);

	int64_t now = now_ns();
	tick_start = now;
	next_tick = now + (int64_t)cfg.interval_ms * 1000000ll;
	slow_since = now;
	for (uint64_t t = 0; t < cfg.threads; t++)
		writer_init(t, now, cpus);
	if (cfg.threads == 1)
		single_loop();
	for (uint64_t t = 0; t < cfg.threads; t++) {
		int e = pthread_create(&writers[t].tid, NULL, writer_thread, &writers[t]);
		if (e)
			fatal("cannot start writer thread %" PRIu64 ": %s", t, strerror(e));
	}
	control_loop();
}
