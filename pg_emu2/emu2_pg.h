/*
 * emu2_pg.h: what the pieces of the PostgreSQL extension share.
 *
 * Shape: one background worker owns the model. A backend that needs a caption builds a request in a
 * dynamic shared memory segment (a shm_toc: header, prompt, images, and a shm_mq for the answer),
 * puts the segment's handle into its own slot of a small array in the main shared memory, and sets
 * the worker's latch. The worker takes queued slots (several at once: a batch), runs them through
 * the engine together and sends each answer through that request's shm_mq.
 */
#ifndef EMU2_PG_H
#define EMU2_PG_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "utils/jsonb.h"

#define EMU2_PG_MAX_BATCH 64

/* ------------------------------------------------------------ GUCs (gucs.c) */

extern char *emu2_guc_model_path;
extern char *emu2_guc_device;
extern int emu2_guc_quant;      /* EMU2_PG_QUANT_* */
extern int emu2_guc_precision;  /* EMU2_PG_PRECISION_* */
extern int emu2_guc_threads;
extern int emu2_guc_max_batch;
extern int emu2_guc_batch_wait_ms;
extern bool emu2_guc_continuous;     /* emu2.continuous_batching (default off) */
extern int emu2_guc_max_image_bytes; /* kB */
extern int emu2_guc_max_pixels;
extern int emu2_guc_max_images;
extern int emu2_guc_max_new_tokens;
extern int emu2_guc_request_timeout; /* ms, 0 = none */

enum { EMU2_PG_QUANT_NONE, EMU2_PG_QUANT_INT8, EMU2_PG_QUANT_INT4 };
enum { EMU2_PG_PRECISION_F32, EMU2_PG_PRECISION_BF16 };
extern const char *emu2_pg_quant_name(int quant);
extern const char *emu2_pg_precision_name(int precision);
extern void emu2_pg_define_gucs(void);

/* ------------------------------------------------------------ generation parameters */

/* The engine's generation options without callbacks: a plain value that can be compared with memcmp,
 * so the worker batches only requests that ask for the same search. Padding is zeroed by
 * emu2_pg_params_init, and every field is set explicitly. */
typedef struct Emu2Params {
    int32 max_new_tokens;
    int32 num_beams;
    float4 length_penalty;
    int32 min_length;
    int32 do_sample;
    float4 temperature;
    float4 top_p;
    int32 top_k;
    float4 repetition_penalty;
    /* emu2_generate_image only (0 / -1 = the engine's default) */
    int32 img_width;
    int32 img_height;
    int32 img_steps;
    float4 img_guidance;
    int32 pad_;
    uint64 seed;
} Emu2Params;


extern void emu2_pg_params_init(Emu2Params *p);
/* Applies a jsonb object of options (NULL = none); raises 22023 on unknown keys or bad values.
 * image: the keys of emu2_generate_image (width, height, steps, guidance, seed) instead. */
extern void emu2_pg_params_from_jsonb(Emu2Params *p, Jsonb *options, bool image);

/* ------------------------------------------------------------ shared state (shared_state.c) */

typedef enum Emu2SlotState {
    EMU2_SLOT_FREE = 0,
    EMU2_SLOT_QUEUED, /* the backend wrote it; the worker has not taken it */
    EMU2_SLOT_TAKEN   /* the worker (generation worker_gen) took it */
} Emu2SlotState;

typedef enum Emu2RequestKind { EMU2_KIND_TEXT = 0, EMU2_KIND_IMAGE = 1 } Emu2RequestKind;

/* One slot per PGPROC (index pgprocno): a backend has at most one request in flight. */
typedef struct Emu2Slot {
    uint32 state;    /* Emu2SlotState */
    uint32 kind;     /* Emu2RequestKind */
    uint64 req_id;
    dsm_handle handle;
    uint32 worker_gen;
    TimestampTz queued_at;
    Emu2Params params;
} Emu2Slot;

typedef enum Emu2ModelState {
    EMU2_MODEL_NOT_CONFIGURED = 0,
    EMU2_MODEL_LOADING,
    EMU2_MODEL_READY,
    EMU2_MODEL_FAILED
} Emu2ModelState;

#define EMU2_PG_ERROR_MAX 512

typedef struct Emu2Shared {
    slock_t mutex; /* guards everything below (short sections only) */
    int n_slots;
    uint64 next_req_id;

    /* the worker */
    pid_t worker_pid;       /* 0 when none runs */
    Latch *worker_latch;
    uint32 worker_gen;      /* +1 at each worker start */
    bool static_worker;     /* registered from shared_preload_libraries */
    TimestampTz launch_at;  /* when a backend last registered a dynamic worker */
    TimestampTz worker_started_at;

    /* reload handshake: emu2_reload() bumps reload_requested, the worker copies it to reload_done */
    uint32 reload_requested;
    uint32 reload_done;

    /* the model and counters, for emu2_status() */
    int model_state;        /* Emu2ModelState */
    char model_path[MAXPGPATH];
    char device[128];
    char quant[16];
    char load_error[EMU2_PG_ERROR_MAX];
    TimestampTz loaded_at;
    double load_seconds;
    uint64 requests_served;
    uint64 requests_failed;
    uint64 requests_cancelled;
    uint64 batches;
    uint64 tokens;
    double busy_seconds;    /* time spent inside the engine */
    uint64 batch_hist[EMU2_PG_MAX_BATCH + 1]; /* [k] = batches of k requests */
    uint32 last_batch_size;

    Emu2Slot slots[FLEXIBLE_ARRAY_MEMBER];
} Emu2Shared;

extern Size emu2_shared_size(void);
/* Attaches (creating it on first use) the shared state; callable from any backend or the worker. */
extern Emu2Shared *emu2_shared(void);
extern void emu2_shared_request_space(void);
/* The postmaster after a crash restart: the next emu2_shared() initializes a fresh block. */
extern void emu2_shared_forget(void);
/* Makes sure a worker runs or is about to: registers a dynamic worker when none is there. */
extern void emu2_ensure_worker(Emu2Shared *sh);
extern void emu2_register_static_worker(void);
extern bool emu2_preloaded;

/* ------------------------------------------------------------ request segment layout */

#define EMU2_TOC_MAGIC 0x656d7532 /* "emu2" */
#define EMU2_KEY_HEADER 1
#define EMU2_KEY_PROMPT 2
#define EMU2_KEY_IMAGES 3
#define EMU2_KEY_MQ 4
#define EMU2_MQ_SIZE (64 * 1024)

typedef struct Emu2RequestHeader {
    uint64 req_id;
    pg_atomic_uint32 cancelled; /* set by the backend when it stops waiting */
    uint32 kind;
    uint32 n_images;
    int32 slot_no;
    int32 pad_;
    Emu2Params params;
    /* images: uint64 sizes[n_images] then the bytes, in KEY_IMAGES */
} Emu2RequestHeader;

/* Reply statuses beyond the engine's emu2_status values. */
#define EMU2_PG_STATUS_NOT_CONFIGURED 1000
#define EMU2_PG_STATUS_LOAD_FAILED 1001

/* The answer, one shm_mq message: this header, then text (NUL-free, UTF-8), PNG bytes or a message. */
typedef struct Emu2Reply {
    int32 status;    /* emu2_status */
    int32 n_tokens;
    int32 stopped;
    int32 pad_;
} Emu2Reply;

/* ------------------------------------------------------------ backend side (client.c) */

typedef struct Emu2Image {
    const char *data;
    Size size;
} Emu2Image;

/* Sends one request to the worker and waits. Returns the reply payload (palloc'd) or raises the
 * error that matches the engine's status. */
extern bytea *emu2_pg_call(Emu2RequestKind kind, const char *prompt_utf8, const Emu2Image *images, int n_images,
                           const Emu2Params *params);

/* Image header sniffing (image_sniff.c): width/height of PNG or JPEG, false when unknown. */
extern bool emu2_pg_image_dims(const unsigned char *p, Size n, uint32 *w, uint32 *h);

/* The worker entry point (worker.c). */
extern PGDLLEXPORT void emu2_worker_main(Datum arg);

#endif
