/* test_batch_support.h: what the batching tests (test_api_batch.c, test_api_continuous.c) share: the
 * tiny model they run on, the request set (held-out describes plus the few-shot prompt over the
 * shipped seed images), what emu2_generate gives one request alone, and a streaming hook that
 * collects each request's pieces. Include after check.h and test_image_support.h. */
#ifndef EMU2_TEST_BATCH_SUPPORT_H
#define EMU2_TEST_BATCH_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu2.h"

#define FEW_SHOT                                                                                                   \
    "[][red, white, 3, bottom left].[][yellow, white, 2, top left].[][green, black, 4, bottom right][]"

static const char *const batch_seed_names[4] = {"red_white_3_bottom_left.jpg", "yellow_white_2_top_right.jpg",
                                                "green_black_4_bottom_right.jpg", "blue_black_1_top_left.jpg"};

/* Loads the shipped tiny model on 1 thread into *m, with random weights (seed 11: near-uniform logits,
 * so any change in what a row attends to changes the tokens) when random_weights. NULL when done,
 * else why the test must skip (written to why). */
static inline const char *batch_load_tiny(emu2_model **m, int random_weights, char *why, size_t why_size)
{
    emu2_load_options lo;
    emu2_load_options_init(&lo);
    lo.threads = 1;
    if (random_weights) {
        lo.flags = EMU2_LOAD_RANDOM_WEIGHTS;
        lo.random_seed = 11;
    }
    emu2_error err;
    if (emu2_model_load(ROOT_PATH("models/emu2-tiny-digits"), &lo, m, &err) != EMU2_OK) {
        snprintf(why, why_size, "tiny model: %.500s", err.message);
        return why;
    }
    return NULL;
}

/* Reads n_held held-out images and the 4 seed images, and appends to rq (at *n) one describe per
 * held-out image and then the few-shot prompt. NULL when done, else why the test must skip (written
 * to why). The buffers go into held[] / seed[] for batch_free_images. */
static inline const char *batch_load_requests(int n_held, unsigned char **held, emu2_image_bytes *held_img,
                                              unsigned char *seed[4], emu2_image_bytes seed_img[4], emu2_request *rq,
                                              size_t *n, char *why, size_t why_size)
{
    for (int i = 0; i < n_held; i++) {
        char rel[64];
        size_t len = 0;
        snprintf(rel, sizeof rel, "tests/data/heldout/%03d.jpg", i);
        if (!(held[i] = read_whole_file(ROOT_PATH(rel), &len))) {
            snprintf(why, why_size, "no %s", rel);
            return why;
        }
        held_img[i] = (emu2_image_bytes){held[i], len};
        rq[(*n)++] = (emu2_request){NULL, &held_img[i], 1};
    }
    for (int i = 0; i < 4; i++) {
        char rel[128];
        size_t len = 0;
        snprintf(rel, sizeof rel, "fixtures/seed-images/%s", batch_seed_names[i]);
        if (!(seed[i] = read_whole_file(SHARED_PATH(rel), &len))) {
            snprintf(why, why_size, "no %s (set EMU2_SHARED)", rel);
            return why;
        }
        seed_img[i] = (emu2_image_bytes){seed[i], len};
    }
    rq[(*n)++] = (emu2_request){FEW_SHOT, seed_img, 4};
    return NULL;
}

static inline void batch_free_images(int n_held, unsigned char **held, unsigned char *seed[4])
{
    for (int i = 0; i < n_held; i++)
        free(held[i]);
    for (int i = 0; i < 4; i++)
        free(seed[i]);
}

/* What emu2_generate (or emu2_describe for an image-only request) gives r alone (NULL when it fails). */
static inline char *batch_alone(emu2_model *m, const emu2_request *r, const emu2_gen_options *o)
{
    char *text = NULL;
    emu2_status st = r->prompt ? emu2_generate(m, r->prompt, r->images, r->n_images, o, &text)
                               : emu2_describe(m, r->images[0].data, r->images[0].size, NULL, o, &text);
    return st == EMU2_OK ? text : NULL;
}

/* Streaming hook state: the pieces each request streamed (text, count); request stop_tag asks to
 * stop after its first piece. Put it first in a test's hook state, so both hooks can take that. */
#define BATCH_STREAM_MAX 24
typedef struct batch_stream {
    char text[BATCH_STREAM_MAX][256];
    int pieces[BATCH_STREAM_MAX];
    size_t stop_tag;
} batch_stream;

/* emu2_batch_hooks.on_token over a batch_stream (user). */
static inline int batch_stream_piece(void *user, size_t tag, int32_t id, const char *piece)
{
    (void)id;
    batch_stream *st = user;
    if (tag >= BATCH_STREAM_MAX)
        return 1;
    st->pieces[tag]++;
    strncat(st->text[tag], piece, sizeof st->text[tag] - strlen(st->text[tag]) - 1);
    return tag == st->stop_tag;
}

#endif
