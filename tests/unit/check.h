/* check.h: the tiny test harness every C test binary uses.
 *
 *   TEST(name) { CHECK(x == 1); CHECKF(y < 2, "y=%d", y); if (!have) SKIP("no fixture"); }
 *   int main(void) { RUN(name); return check_finish(); }
 *
 * Each test prints one line (ok / FAIL / skip: why); check_finish prints
 * "RESULT passed=N failed=N skipped=N", which tests/run.sh adds up. A failed CHECK returns from
 * the test function, so later checks in that test do not run on bad state. */
#ifndef EMU2_TEST_CHECK_H
#define EMU2_TEST_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed, check_skipped;
static int check_cur_failed, check_cur_skipped;
static char check_skip_reason[256];

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_report_failure(__FILE__, __LINE__, "%s", #cond);                                 \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_report_failure(__FILE__, __LINE__, __VA_ARGS__);                                 \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define SKIP(...)                                                                                  \
    do {                                                                                           \
        snprintf(check_skip_reason, sizeof check_skip_reason, __VA_ARGS__);                        \
        check_cur_skipped = 1;                                                                     \
        return;                                                                                    \
    } while (0)

#define RUN(fn) check_run(#fn, fn)

static inline void check_report_failure(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    check_cur_failed = 1;
}

static inline void check_run(const char *name, void (*fn)(void))
{
    check_cur_failed = 0;
    check_cur_skipped = 0;
    fn();
    if (check_cur_failed) {
        check_failed++;
        printf("  FAIL %s\n", name);
    } else if (check_cur_skipped) {
        check_skipped++;
        printf("  skip %s: %s\n", name, check_skip_reason);
    } else {
        check_passed++;
        printf("  ok   %s\n", name);
    }
    fflush(stdout);
}

static inline int check_finish(void)
{
    printf("RESULT passed=%d failed=%d skipped=%d\n", check_passed, check_failed, check_skipped);
    return check_failed ? 1 : 0;
}

/* Paths of test inputs: EMU2_ROOT (the repo, default ".") and EMU2_SHARED (default "../shared"),
 * both set by tests/run.sh. Returns a static buffer per call slot (4 slots rotate). */
static inline const char *check_path(const char *base_env, const char *base_default, const char *rel)
{
    static char bufs[4][1024];
    static int slot;
    const char *base = getenv(base_env);
    if (!base || !*base)
        base = base_default;
    char *b = bufs[slot++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", base, rel);
    return b;
}
#define ROOT_PATH(rel) check_path("EMU2_ROOT", ".", rel)
#define SHARED_PATH(rel) check_path("EMU2_SHARED", "../shared", rel)

#endif
