/* bench_util.h: what the benchmark programs share, header only so that each still builds with one cc
 * line: a monotonic clock, ordering doubles for medians, the "[DIR] --name VALUE ..." command line and
 * "1,8,32" lists. */
#ifndef EMU2_BENCH_UTIL_H
#define EMU2_BENCH_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* qsort comparator: ascending doubles. */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One step through "[DIR] --name VALUE ..." at argv[*i]: 0 when it is the positional DIR (stored in *dir),
 * 1 when it is an option with its value in *value (*i then points at the value), -1 when the value is
 * missing (said on stderr as "PROG: OPTION needs a value"). */
static inline int bench_next_arg(int argc, char **argv, int *i, const char *prog, const char **dir,
                                 const char **value)
{
    const char *o = argv[*i];
    if (o[0] != '-') {
        *dir = o;
        return 0;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", prog, o);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

/* "1,8,32" into out (at most max values, atoi each); returns how many. */
static inline int bench_parse_ints(const char *s, int *out, int max)
{
    int n = 0;
    while (*s && n < max) {
        out[n++] = atoi(s);
        const char *c = strchr(s, ',');
        if (!c)
            break;
        s = c + 1;
    }
    return n;
}

#endif
