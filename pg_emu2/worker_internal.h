/* worker_internal.h: what worker.c and worker_batch.c share (the worker process only). */
#ifndef EMU2_PG_WORKER_INTERNAL_H
#define EMU2_PG_WORKER_INTERNAL_H

#include <signal.h>

#include "emu2.h"

typedef struct WorkerModel {
    emu2_model *model;        /* NULL: not configured or failed (error says why) */
    bool tried;               /* the settings below were tried */
    char path[MAXPGPATH];
    char device[64];          /* as asked */
    char device_used[128];     /* as the engine reports */
    int quant;
    int threads;
    double load_seconds;
    char error[EMU2_PG_ERROR_MAX];
} WorkerModel;

extern volatile sig_atomic_t emu2_worker_stop;

/* Takes one batch of queued requests, runs it and answers; returns how many requests it took. */
extern int emu2_worker_serve_once(Emu2Shared *sh, WorkerModel *wm);

#endif
