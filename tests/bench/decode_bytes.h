/* decode_bytes.h: the bytes of weights one decode step reads, for the bandwidth figures of
 * bench_engine.c and gpu_bench.c (header only: each still builds with one cc line). */
#ifndef EMU2_BENCH_DECODE_BYTES_H
#define EMU2_BENCH_DECODE_BYTES_H

#include "model/decoder.h"

/* Every layer matrix and norm, the final norm, lm_head, and one embedding row per sequence. */
static inline double decode_weight_bytes(const emu2_decoder_weights *w, int rows)
{
    double b = 0;
    for (size_t l = 0; l < w->n_layers; l++) {
        const emu2_decoder_layer_weights *L = &w->layers[l];
        const emu2_op_weight *m[] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < sizeof m / sizeof *m; i++)
            b += (double)m[i]->w.nbytes;
        b += (double)L->input_norm.nbytes + (double)L->post_norm.nbytes;
    }
    b += (double)w->final_norm.nbytes + (double)w->lm_head.w.nbytes;
    b += rows * ((double)w->embed.nbytes / (double)w->embed.shape[0]);
    return b;
}

#endif
