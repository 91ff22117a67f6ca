/*
 * emu2.h: the public C API of the emu2 engine (libemu2.so).
 *
 * Shape of the API:
 *   - opaque handles (emu2_model), created by a load function and released by emu2_model_free;
 *   - every fallible call returns an emu2_status; the human-readable message is kept per handle
 *     (emu2_model_last_error) or, for calls that have no handle yet, written into an emu2_error;
 *   - buffers the library returns (ids, text, tensors, reports) are released with emu2_free;
 *   - no global state: any number of models may live in one process and be used from different
 *     threads (one thread per model at a time).
 * The library never calls abort() or exit(); a bad input is always a status plus a message.
 */
#ifndef EMU2_H
#define EMU2_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define EMU2_API __attribute__((visibility("default")))
#else
#define EMU2_API
#endif

#define EMU2_VERSION_STRING "0.1.0"

typedef enum emu2_status {
    EMU2_OK = 0,
    EMU2_ERR_INVALID_ARGUMENT, /* caller misuse: NULL pointer, bad option value */
    EMU2_ERR_IO,               /* a file could not be opened, read or mapped */
    EMU2_ERR_FORMAT,           /* untrusted bytes are malformed: checkpoint, JSON, image, pickle */
    EMU2_ERR_UNSUPPORTED,      /* well-formed but not something this engine handles (yet) */
    EMU2_ERR_LIMIT,            /* a configured limit was exceeded: bytes, pixels, tokens, images */
    EMU2_ERR_MISMATCH,         /* inconsistent inputs: placeholder/image count, tensor shape vs config */
    EMU2_ERR_NOMEM,            /* an allocation failed */
    EMU2_ERR_CANCELLED,        /* a callback asked to stop */
    EMU2_ERR_INTERNAL          /* a bug: please report it */
} emu2_status;

/* Message buffer for calls that have no handle to hold the message. */
#define EMU2_ERROR_MESSAGE_MAX 512
typedef struct emu2_error {
    emu2_status status;
    char message[EMU2_ERROR_MESSAGE_MAX];
} emu2_error;

EMU2_API const char *emu2_version(void);
EMU2_API const char *emu2_status_name(emu2_status status);
/* Releases any buffer the library handed out (ids, text, tensors, reports). NULL is fine. */
EMU2_API void emu2_free(void *ptr);

/* ---------------------------------------------------------------- loading */

typedef struct emu2_model emu2_model;

/* Called during long work (loading, batches). Return non-zero to cancel. */
typedef int (*emu2_progress_fn)(void *user, const char *stage, uint64_t done, uint64_t total);

typedef enum emu2_load_flags {
    EMU2_LOAD_DEFAULT = 0,
    EMU2_LOAD_NO_WEIGHTS = 1 << 0, /* config + tokenizer only: for tokenize/preprocess tools */
    EMU2_LOAD_RANDOM_WEIGHTS = 1 << 1 /* no checkpoint: every tensor the config needs, random
                                         (seeded by random_seed), built on the device; for speed
                                         measurements of any config without the real weights */
} emu2_load_flags;

typedef struct emu2_load_options {
    size_t struct_size;     /* sizeof(emu2_load_options): lets the struct grow compatibly */
    unsigned flags;         /* emu2_load_flags */
    int threads;            /* CPU threads; 0 = number of cores */
    const char *device;     /* "auto", "cpu", "cuda:0", ... ; NULL = "auto" */
    emu2_progress_fn progress;
    void *progress_user;
    /* Fields below were added later; struct_size tells whether a caller has them. */
    const char *quant;      /* weight-only quantization of the LLM linears at load: NULL or "none",
                               "int8", "int4" (a checkpoint written by `emu2 convert` is read as is) */
    uint64_t random_seed;   /* EMU2_LOAD_RANDOM_WEIGHTS: the seed */
    const char *precision;  /* NULL/"f32": activations stay f32 (default, exact); "bf16": linears with bf16
                               weights round their input activations to bf16 and use bf16 dot products
                               (f32 accumulation) for prefill and the vision tower (CPU with AVX512_BF16;
                               elsewhere f32, the reason in emu2_model_info.device) */
} emu2_load_options;

EMU2_API void emu2_load_options_init(emu2_load_options *opts);

/* Loads a model folder (config.json, tokenizer files, checkpoint). On failure *out is NULL and
 * err (if given) holds the reason. */
EMU2_API emu2_status emu2_model_load(const char *dir, const emu2_load_options *opts,
                                     emu2_model **out, emu2_error *err);
EMU2_API void emu2_model_free(emu2_model *model);
/* The message of the last failed call on this model ("" after success). */
EMU2_API const char *emu2_model_last_error(const emu2_model *model);

/* ---------------------------------------------------------------- inspection */

typedef struct emu2_model_info {
    const char *model_version; /* "base" or "chat" */
    int image_size, patch_size, vision_width, vision_layers, n_query;
    int hidden_size, num_layers, num_heads, vocab_size;
    int bos_id, eos_id, pad_id, image_token_id;
    uint64_t n_params;         /* parameters present in the checkpoint (0 with NO_WEIGHTS) */
    const char *device;        /* which device runs the networks */
} emu2_model_info;

EMU2_API emu2_status emu2_model_get_info(emu2_model *model, emu2_model_info *info);

/* Checks a model folder without loading it: tensors, dtypes, parameter counts per component, and
 * every missing / unexpected / mis-shaped tensor against the config. *report is a text report
 * (release with emu2_free). Returns EMU2_OK only if the checkpoint matches the config exactly;
 * the report is produced in both cases when the folder could be read. */
EMU2_API emu2_status emu2_inspect(const char *dir, char **report, uint64_t *n_params, emu2_error *err);

/* ---------------------------------------------------------------- text */

typedef enum emu2_tokenize_flags {
    EMU2_TOK_DEFAULT = 0,        /* BOS prepended, placeholders expanded */
    EMU2_TOK_NO_BOS = 1 << 0,
    EMU2_TOK_NO_PLACEHOLDERS = 1 << 1 /* keep "[]" and "[<IMG_PLH>]" as plain text */
} emu2_tokenize_flags;

/* Tokenizes as transformers 4.31's slow LlamaTokenizer with Emu2's added tokens does. With
 * placeholders expanded, every "[]" / "[<IMG_PLH>]" becomes [IMG] <image>xn_query [/IMG].
 * *ids is released with emu2_free. */
EMU2_API emu2_status emu2_tokenize(emu2_model *model, const char *text, unsigned flags,
                                   int32_t **ids, size_t *n_ids);
/* Decodes ids to text. skip_special: drop BOS/EOS/PAD and Emu2's added tokens. */
EMU2_API emu2_status emu2_detokenize(emu2_model *model, const int32_t *ids, size_t n_ids,
                                     int skip_special, char **text);
/* Number of image placeholders in a prompt ("[]" or "[<IMG_PLH>]"). */
EMU2_API emu2_status emu2_count_placeholders(const char *prompt, size_t *count);

/* ---------------------------------------------------------------- images */

typedef struct emu2_image_limits {
    size_t max_bytes;  /* 0 = default (64 MiB) */
    uint64_t max_pixels; /* width*height of the encoded image; 0 = default (100 megapixels) */
} emu2_image_limits;

/* Decodes JPEG/PNG bytes, converts to RGB as PIL's convert('RGB'), resizes to the model's image size
 * with PIL-exact antialiased bicubic, normalizes with the CLIP mean/std. out receives 3*S*S floats
 * (CHW, R,G,B), S = image size; *out is released with emu2_free. */
EMU2_API emu2_status emu2_preprocess(emu2_model *model, const void *bytes, size_t n_bytes,
                                     const emu2_image_limits *limits, float **out, size_t *n_out);

/* ---------------------------------------------------------------- generation */

typedef int (*emu2_token_fn)(void *user, int32_t id, const char *piece);

typedef struct emu2_gen_options {
    size_t struct_size;
    int max_new_tokens;       /* default 64 */
    int num_beams;            /* default 5 (1 = greedy or sampling) */
    float length_penalty;     /* default -1 (the published examples) */
    int min_length;           /* default 1 */
    int do_sample;            /* default 0 */
    float temperature, top_p; /* defaults 1.0, 1.0 */
    int top_k;                /* default 50 (as transformers); 0 = off */
    float repetition_penalty; /* default 1.0 */
    uint64_t seed;
    emu2_token_fn on_token;   /* streaming; return non-zero to stop */
    void *on_token_user;
} emu2_gen_options;

EMU2_API void emu2_gen_options_init(emu2_gen_options *opts);

typedef struct emu2_image_bytes {
    const void *data;
    size_t size;
} emu2_image_bytes;

/* "Describe the image in details:" (or prompt, when given) about one image. *text: emu2_free. */
EMU2_API emu2_status emu2_describe(emu2_model *model, const void *image, size_t image_size,
                                   const char *prompt, const emu2_gen_options *opts, char **text);
/* A prompt with one placeholder per image, e.g. the published few-shot example. */
EMU2_API emu2_status emu2_generate(emu2_model *model, const char *prompt,
                                   const emu2_image_bytes *images, size_t n_images,
                                   const emu2_gen_options *opts, char **text);

/* ---------------------------------------------------------------- batches */

/* One request of a batch. prompt: as emu2_generate (one placeholder per image); NULL = describe
 * images[0] with the default question ("Describe the image in details:"), n_images must be 1. */
typedef struct emu2_request {
    const char *prompt;
    const emu2_image_bytes *images;
    size_t n_images;
} emu2_request;

/* The outcome of one request. Requests fail one by one (a corrupt image fails its own request only). */
typedef struct emu2_result {
    emu2_status status;  /* EMU2_OK: text is set */
    char *text;          /* generated text (emu2_results_clear releases it) */
    size_t n_tokens;     /* tokens generated (EOS excluded) */
    int stopped;         /* 1: ended early by on_token or cancelled (text holds what was made) */
    char message[512];   /* why, when status != EMU2_OK */
} emu2_result;

typedef struct emu2_batch_hooks {
    size_t struct_size;  /* sizeof(emu2_batch_hooks) */
    /* Streaming per request (item = index in the batch): decoded text pieces as they are made
     * (greedy/sampling: as each token is chosen; beam search: the winner, at the end). Return non-zero
     * to stop that request only (its result: EMU2_OK, stopped = 1, the text so far). */
    int (*on_token)(void *user, size_t item, int32_t id, const char *piece);
    /* Polled between decoder steps; non-zero drops that request at once (its result:
     * EMU2_ERR_CANCELLED, stopped = 1); the others go on. */
    int (*cancelled)(void *user, size_t item);
    void *user;
} emu2_batch_hooks;

EMU2_API void emu2_batch_hooks_init(emu2_batch_hooks *hooks);

/* Runs n requests as one batch: images through the vision tower together, prompts left-padded into
 * one decoder batch, one search (same options for all; opts->on_token is ignored, use hooks).
 * results[n] is filled for every request, also on failure. Returns EMU2_OK when the batch ran (check
 * each result's status); an error status only for a failure of the whole call (bad options, out of
 * memory, a backend error), then every result carries that error too. Greedy and beam results equal
 * what emu2_generate gives for each request alone (up to float rounding of padded batches). */
EMU2_API emu2_status emu2_generate_batch(emu2_model *model, const emu2_request *requests, size_t n,
                                         const emu2_gen_options *opts, const emu2_batch_hooks *hooks,
                                         emu2_result *results);
/* Releases the texts of results[n] and zeroes them. */
EMU2_API void emu2_results_clear(emu2_result *results, size_t n);

/* Continuous batching: a running decode that requests join and leave between decoder steps. At the
 * next step after it is added, a request's images go through the vision tower and its prompt is
 * prefilled (with the other requests added since of the same prompt length, unpadded), then its
 * rows decode together with the others'; it leaves as soon as its own search ends. Every request
 * gets what emu2_generate gives it alone (same search code; sampling seeded per request).
 *   emu2_batcher_create(model, &opts, 8, 0, &hooks, &b);
 *   loop: emu2_batcher_add(b, &request, tag) while there is room and work;
 *         emu2_batcher_step(b); while (emu2_batcher_take(b, &tag, &result)) { ... emu2_results_clear(&result, 1); }
 * One caller at a time; the model must not run anything else while a step runs. */
typedef struct emu2_batcher emu2_batcher;
/* opts: shared by all requests (NULL = defaults; on_token ignored: use hooks). max_requests: how
 * many decode at once (1..1024). max_positions: prompt + max_new_tokens of one request (0 = the
 * model's context length); sizes the KV cache (max_requests x num_beams rows). hooks (may be NULL):
 * as emu2_generate_batch's, `item` being the tag given to emu2_batcher_add. */
EMU2_API emu2_status emu2_batcher_create(emu2_model *model, const emu2_gen_options *opts, size_t max_requests,
                                         size_t max_positions, const emu2_batch_hooks *hooks, emu2_batcher **out);
/* Checks and prepares the request (template, tokens, decoded images); it joins at the next step.
 * A request that fails alone (bad image, too long) is finished at once with its error (see
 * emu2_batcher_take): EMU2_OK all the same. EMU2_ERR_LIMIT (nothing added) when max_requests are
 * already added and not finished. */
EMU2_API emu2_status emu2_batcher_add(emu2_batcher *b, const emu2_request *request, size_t tag);
/* Polls the cancel hook, starts the requests added since the last step (vision tower, prefill, first
 * tokens), then one decoder step for every decoding request; those whose search ends are finished.
 * A request whose start fails is finished with its error alone. An error status is a failure of the
 * whole decode: every running request is finished with that error. */
EMU2_API emu2_status emu2_batcher_step(emu2_batcher *b);
/* Requests added and not finished. */
EMU2_API size_t emu2_batcher_running(const emu2_batcher *b);
/* Hands over the oldest finished request: 1 with *tag and *result set (release result->text with
 * emu2_results_clear(result, 1)); 0 when none is waiting. */
EMU2_API int emu2_batcher_take(emu2_batcher *b, size_t *tag, emu2_result *result);
/* Frees everything, finished results not taken included. NULL is fine. */
EMU2_API void emu2_batcher_free(emu2_batcher *b);

/* ---------------------------------------------------------------- images out (Emu2-Gen) */

typedef struct emu2_image_options {
    size_t struct_size;  /* sizeof(emu2_image_options) */
    int width, height;   /* pixels, multiples of 8; 0 = the model's default (1024 for Emu2-Gen) */
    int steps;           /* Euler steps; default 50 */
    float guidance;      /* classifier-free guidance scale, >= 0; default 3.0 */
    uint64_t seed;       /* initial noise */
    int vae_tiling;      /* 1: decode the latents in tiles (large images, less memory) */
    emu2_progress_fn progress; /* stage "denoise" (done/total steps), "decode"; non-zero cancels */
    void *progress_user;
} emu2_image_options;

EMU2_API void emu2_image_options_init(emu2_image_options *opts);

/* Emu2-Gen: an image for a prompt with one placeholder per image (text, images or both, as the
 * published pipeline's inputs). *png is a PNG file in memory (release with emu2_free). Models
 * without a generator (no unet/ and vae/) give EMU2_ERR_UNSUPPORTED. */
EMU2_API emu2_status emu2_generate_image(emu2_model *model, const char *prompt,
                                         const emu2_image_bytes *images, size_t n_images,
                                         const emu2_image_options *opts, void **png, size_t *png_size);

#ifdef __cplusplus
}
#endif
#endif /* EMU2_H */
