/* Sets one process's wall clock ahead or back (LD_PRELOAD), for the fault
 * suite's clock step: CLOCK_REALTIME and its kin read the kernel's clock
 * plus the seconds written in the file CLOCKSHIFT_FILE (re-read at most
 * every 200 ms); the monotonic clocks are left alone, as an NTP step or a
 * resumed virtual machine leaves them. Only system calls: no allocation, no
 * symbol lookup, so it is safe in a process whose malloc (jemalloc) asks
 * for the time while it initialises.
 *
 *   cc -shared -fPIC -O2 -o clockshift.so clockshift.c
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long shift_seconds;
static long read_at_ns = -1000000000L;

static long now_monotonic_ns(void) {
    struct timespec ts;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static long shift(void) {
    long now = now_monotonic_ns();
    if (now - __atomic_load_n(&read_at_ns, __ATOMIC_RELAXED) < 200000000L)
        return __atomic_load_n(&shift_seconds, __ATOMIC_RELAXED);
    __atomic_store_n(&read_at_ns, now, __ATOMIC_RELAXED);
    const char *path = getenv("CLOCKSHIFT_FILE");
    if (path == NULL)
        return 0;
    int fd = (int)syscall(SYS_open, path, O_RDONLY);
    if (fd < 0)
        return __atomic_load_n(&shift_seconds, __ATOMIC_RELAXED);
    char text[32];
    long n = syscall(SYS_read, fd, text, sizeof text - 1);
    syscall(SYS_close, fd);
    if (n <= 0)
        return __atomic_load_n(&shift_seconds, __ATOMIC_RELAXED);
    text[n] = 0;
    long value = 0, sign = 1;
    const char *p = text;
    if (*p == '-' || *p == '+')
        sign = *p++ == '-' ? -1 : 1;
    for (; *p >= '0' && *p <= '9'; p++)
        value = value * 10 + (*p - '0');
    __atomic_store_n(&shift_seconds, sign * value, __ATOMIC_RELAXED);
    return sign * value;
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    long result = syscall(SYS_clock_gettime, clock, ts);
    if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
        ts->tv_sec += shift();
    return (int)result;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return -1;
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    (void)tz;
    return 0;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
