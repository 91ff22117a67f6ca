/* generate_internal.h: the steps of text generation that emu2_generate and emu2_generate_batch share. */
#ifndef EMU2_API_GENERATE_INTERNAL_H
#define EMU2_API_GENERATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "emu2.h"

struct emu2_model;

/* Copies and checks the caller's options (NULL = defaults). */
emu2_status emu2_read_gen_options(const emu2_gen_options *in, emu2_gen_options *o, emu2_error *err);
/* Checks a prompt against its image count, applies the model's chat template, tokenizes (placeholders
 * expanded) and checks the context length. *ids: free(). */
emu2_status emu2_api_prepare_prompt(const struct emu2_model *m, const char *prompt, size_t n_images, int32_t **ids,
                                    size_t *n_ids, emu2_error *err);
/* Decodes and preprocesses images in order into one host buffer n x [3, S, S] (*out: free(); NULL
 * when n = 0). Errors name the image ("image 2: ..."). */
emu2_status emu2_api_preprocess_images(const struct emu2_model *m, const emu2_image_bytes *images, size_t n,
                                       float **out, emu2_error *err);
/* The prompt of a describe: the image, then the question (NULL = "Describe the image in details:").
 * malloc'd; NULL when out of memory. */
char *emu2_api_describe_prompt(const char *question);
/* r->status and r->message from e (EMU2_ERR_INTERNAL when e holds no status); the rest of r is left. */
void emu2_api_result_fail(emu2_result *r, const emu2_error *e);
/* emu2_decode_fn for text streams: the model's tokenizer, special tokens skipped (user = tokenizer). */
emu2_status emu2_api_decode_for_stream(void *user, const int32_t *ids, size_t n, char **text, emu2_error *err);

/* Templates, tokenizes (checking the context) and decodes the images of one batch request (NULL
 * prompt = describe images[0]). *ids and *pixels: free() (also on failure). */
emu2_status emu2_api_prepare_request(const struct emu2_model *m, const emu2_request *rq, int32_t **ids, size_t *n_ids,
                                     float **pixels, emu2_error *err);

#endif
