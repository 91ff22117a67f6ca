/* bench_batching.c: captions of held-out images three ways, alternating in one process, on one
 * model: one request at a time (emu2_generate_batch of 1), static batches of B (emu2_generate_batch),
 * and continuous batching with B places (emu2_batcher, a new request joining as soon as one ends).
 * Prints captions/s (wall) and CPU ms per caption (process CPU time: less sensitive to other load
 * on a shared machine), medians over the rounds, and checks that the three give the same texts.
 *
 *   bench_batching [MODEL_DIR] [--n 128] [--batch 8] [--beams 5] [--threads 1] [--rounds 3]
 *                  [--images tests/data/heldout] [--tokens 32] [--modes 012]
 * (--modes picks which of the three run: 0 one at a time, 1 static, 2 continuous; e.g. for a profile.)
 * (make bench-batching runs it on the tiny model.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "emu2.h"

#define MAX_IMAGES 256

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size > 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size)) &&
        fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = size > 0 ? (size_t)size : 0;
    return buf;
}

typedef struct run {
    emu2_model *m;
    const emu2_request *rq; /* [n_images] */
    size_t n_images, n, batch;
    const emu2_gen_options *o;
    char **texts; /* [n] of the last run */
} run;

static void keep(run *r, size_t i, emu2_result *res)
{
    free(r->texts[i]);
    r->texts[i] = strdup(res->status == EMU2_OK && res->text ? res->text : "(failed)");
}

/* mode 0: one at a time, 1: static batches of r->batch, 2: continuous with r->batch places. */
static int run_mode(run *r, int mode)
{
    emu2_result res[MAX_IMAGES];
    if (mode < 2) {
        size_t b = mode == 0 ? 1 : r->batch;
        for (size_t i = 0, k; i < r->n; i += k) {
            size_t at = i % r->n_images; /* the images repeat when n is larger */
            k = b;
            k = r->n - i < k ? r->n - i : k;
            k = r->n_images - at < k ? r->n_images - at : k;
            if (emu2_generate_batch(r->m, r->rq + at, k, r->o, NULL, res) != EMU2_OK)
                return -1;
            for (size_t j = 0; j < k; j++)
                keep(r, i + j, &res[j]);
            emu2_results_clear(res, k);
        }
        return 0;
    }
    emu2_batcher *b = NULL;
    if (emu2_batcher_create(r->m, r->o, r->batch, 0, NULL, &b) != EMU2_OK)
        return -1;
    size_t next = 0, done = 0, tag;
    while (done < r->n) {
        while (next < r->n && emu2_batcher_running(b) < r->batch)
            if (emu2_batcher_add(b, &r->rq[next % r->n_images], next) != EMU2_OK) {
                emu2_batcher_free(b);
                return -1;
            } else {
                next++;
            }
        if (emu2_batcher_step(b) != EMU2_OK) {
            emu2_batcher_free(b);
            return -1;
        }
        while (emu2_batcher_take(b, &tag, &res[0])) {
            keep(r, tag, &res[0]);
            emu2_results_clear(&res[0], 1);
            done++;
        }
    }
    emu2_batcher_free(b);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = "models/emu2-tiny-digits", *images = "tests/data/heldout";
    int n = 128, batch = 8, beams = 5, threads = 1, rounds = 3, tokens = 32;
    const char *modes = "012";
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int kind = bench_next_arg(argc, argv, &i, "bench_batching", &dir, &v);
        if (kind < 0)
            return 2;
        if (kind == 0)
            continue;
        const char *o = argv[i - 1];
        if (!strcmp(o, "--n"))
            n = atoi(v);
        else if (!strcmp(o, "--batch"))
            batch = atoi(v);
        else if (!strcmp(o, "--beams"))
            beams = atoi(v);
        else if (!strcmp(o, "--threads"))
            threads = atoi(v);
        else if (!strcmp(o, "--rounds"))
            rounds = atoi(v);
        else if (!strcmp(o, "--tokens"))
            tokens = atoi(v);
        else if (!strcmp(o, "--images"))
            images = v;
        else if (!strcmp(o, "--modes"))
            modes = v;
        else {
            fprintf(stderr, "bench_batching: unknown option %s\n", o);
            return 2;
        }
    }
    if (n < 1 || batch < 1 || batch > MAX_IMAGES || rounds < 1 || rounds > 50) {
        fprintf(stderr, "bench_batching: need --n >= 1, --batch 1..%d, --rounds 1..50\n", MAX_IMAGES);
        return 2;
    }
    emu2_load_options lo;
    emu2_load_options_init(&lo);
    lo.threads = threads;
    emu2_model *m = NULL;
    emu2_error err;
    if (emu2_model_load(dir, &lo, &m, &err) != EMU2_OK) {
        fprintf(stderr, "bench_batching: %s\n", err.message);
        return 1;
    }
    static emu2_image_bytes img[MAX_IMAGES];
    static emu2_request rq[MAX_IMAGES];
    size_t n_images = 0;
    for (; n_images < MAX_IMAGES; n_images++) {
        char path[4096];
        size_t size = 0;
        snprintf(path, sizeof path, "%s/%03zu.jpg", images, n_images);
        unsigned char *data = read_file(path, &size);
        if (!data)
            break;
        img[n_images] = (emu2_image_bytes){data, size};
        rq[n_images] = (emu2_request){NULL, &img[n_images], 1};
    }
    if (n_images == 0) {
        fprintf(stderr, "bench_batching: no %s/000.jpg\n", images);
        return 1;
    }
    emu2_gen_options o;
    emu2_gen_options_init(&o);
    o.num_beams = beams;
    o.max_new_tokens = tokens;
    char **texts[3];
    run r = {m, rq, n_images, (size_t)n, (size_t)batch, &o, NULL};
    double wall[3][50], cpu[3][50];
    static const char *names[3] = {"one at a time", "static batches", "continuous"};
    for (int k = 0; k < 3; k++)
        texts[k] = calloc((size_t)n, sizeof(char *));
    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < 3; k++) {
            if (!strchr(modes, '0' + k))
                continue;
            r.texts = texts[k];
            double w0 = bench_now(), c0 = cpu_now();
            if (run_mode(&r, k) != 0) {
                fprintf(stderr, "bench_batching: %s: %s\n", names[k], emu2_model_last_error(m));
                return 1;
            }
            wall[k][round] = bench_now() - w0;
            cpu[k][round] = cpu_now() - c0;
        }
    int differ = 0, first = -1;
    for (int k = 0; k < 3; k++)
        if (strchr(modes, '0' + k) && first < 0)
            first = k;
    if (first < 0) {
        fprintf(stderr, "bench_batching: --modes names none of 0, 1, 2\n");
        return 2;
    }
    for (int i = 0; i < n; i++)
        for (int k = first + 1; k < 3; k++)
            if (strchr(modes, '0' + k) && strcmp(texts[first][i], texts[k][i]) != 0) {
                differ++;
                break;
            }
    FILE *la = fopen("/proc/loadavg", "r");
    char load[32] = "?";
    if (la) {
        if (fscanf(la, "%31s", load) != 1)
            strcpy(load, "?");
        fclose(la);
    }
    printf("%d captions, beams %d, %d new tokens at most, %d thread(s), batch %d, %d rounds (medians), load %s:\n", n,
           beams, tokens, threads, batch, rounds, load);
    for (int k = 0; k < 3; k++) {
        if (!strchr(modes, '0' + k))
            continue;
        qsort(wall[k], (size_t)rounds, sizeof(double), bench_cmp_double);
        qsort(cpu[k], (size_t)rounds, sizeof(double), bench_cmp_double);
        printf("  %-15s %7.1f captions/s  %6.2f CPU ms/caption\n", names[k], n / wall[k][rounds / 2],
               cpu[k][rounds / 2] * 1e3 / n);
    }
    printf("  texts differing between the three: %d of %d\n", differ, n);
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < n; i++)
            free(texts[k][i]); /* NULL for a mode that did not run */
        free(texts[k]);
    }
    for (size_t i = 0; i < n_images; i++)
        free((void *)img[i].data);
    emu2_model_free(m);
    return differ ? 3 : 0;
}
