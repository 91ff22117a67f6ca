/* sql_api.c: emu2_describe, emu2_generate, emu2_generate_image. Arguments are checked here, in the
 * calling backend (NULLs, counts, limits, image headers), so most user errors never reach the
 * worker; the rest (corrupt images, prompts too long for the context) come back from the engine as
 * per-call errors. Text crosses to the worker as UTF-8 whatever the database encoding. */
#include "emu2_pg.h"

#include "catalog/pg_type.h"
#include "emu2.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

PG_FUNCTION_INFO_V1(emu2_sql_describe);
PG_FUNCTION_INFO_V1(emu2_sql_generate);
PG_FUNCTION_INFO_V1(emu2_sql_generate_image);

#define DEFAULT_QUESTION "Describe the image in details:"

static void check_image(const char *data, Size size, int index)
{
    Size max_bytes = (Size)emu2_guc_max_image_bytes * 1024;
    if (size > max_bytes)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("emu2: image %d is %zu bytes, more than emu2.max_image_bytes (%zu)", index, size,
                               max_bytes)));
    uint32 w, h;
    if (!emu2_pg_image_dims((const unsigned char *)data, size, &w, &h))
        return; /* the engine's decoder says what is wrong with it, if anything */
    if (w == 0 || h == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
                        errmsg("emu2: image %d is corrupt: its header says %u x %u pixels", index, w, h)));
    uint64 pixels = (uint64)w * h;
    if (pixels > (uint64)emu2_guc_max_pixels)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("emu2: image %d is %u x %u = " UINT64_FORMAT " pixels, more than emu2.max_pixels (%d)",
                               index, w, h, pixels, emu2_guc_max_pixels),
                        errhint("A small file that claims this many pixels may be a decompression bomb.")));
}

/* The images of a bytea[] (any shape, row-major order); NULL elements are errors. */
static Emu2Image *images_from_array(ArrayType *arr, int *n_out)
{
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(arr, BYTEAOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    if (n > emu2_guc_max_images)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("emu2: %d images, more than emu2.max_images (%d)", n, emu2_guc_max_images)));
    Emu2Image *imgs = palloc0(sizeof(Emu2Image) * Max(n, 1));
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("emu2: image %d is NULL", i + 1)));
        bytea *b = DatumGetByteaPP(elems[i]);
        imgs[i].data = VARDATA_ANY(b);
        imgs[i].size = VARSIZE_ANY_EXHDR(b);
        check_image(imgs[i].data, imgs[i].size, i + 1);
    }
    *n_out = n;
    return imgs;
}

static char *prompt_to_utf8(text *t)
{
    char *s = text_to_cstring(t);
    return pg_server_to_any(s, (int)strlen(s), PG_UTF8);
}

static void check_placeholders(const char *prompt, int n_images)
{
    size_t n_ph = 0;
    if (emu2_count_placeholders(prompt, &n_ph) != EMU2_OK)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("emu2: could not read the prompt")));
    if (n_ph != (size_t)n_images)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("emu2: the prompt has %zu image placeholder%s but %d image%s given", n_ph,
                               n_ph == 1 ? "" : "s", n_images, n_images == 1 ? " was" : "s were"),
                        errhint("Put one \"[]\" (or \"[<IMG_PLH>]\") in the prompt per image, in order.")));
}

/* The worker's UTF-8 answer (not NUL-terminated) in the database encoding; checks the bytes. */
static text *reply_to_text(bytea *r)
{
    int len = (int)(VARSIZE(r) - VARHDRSZ);
    char *s = pg_any_to_server(VARDATA(r), len, PG_UTF8);
    return s == VARDATA(r) ? cstring_to_text_with_len(s, len) : cstring_to_text(s);
}

static Jsonb *options_arg(FunctionCallInfo fcinfo, int i)
{
    return PG_NARGS() > i && !PG_ARGISNULL(i) ? PG_GETARG_JSONB_P(i) : NULL;
}

/* emu2_describe(image bytea, prompt text = NULL, max_new_tokens int = NULL, options jsonb = NULL) */
Datum emu2_sql_describe(PG_FUNCTION_ARGS)
{
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("emu2_describe: the image is NULL")));
    bytea *img = PG_GETARG_BYTEA_PP(0);
    Emu2Image image = {VARDATA_ANY(img), VARSIZE_ANY_EXHDR(img)};
    check_image(image.data, image.size, 1);
    const char *question = PG_NARGS() > 1 && !PG_ARGISNULL(1) ? prompt_to_utf8(PG_GETARG_TEXT_PP(1)) : DEFAULT_QUESTION;
    Emu2Params params;
    emu2_pg_params_init(&params);
    emu2_pg_params_from_jsonb(&params, options_arg(fcinfo, 3), false);
    if (PG_NARGS() > 2 && !PG_ARGISNULL(2)) {
        int32 n = PG_GETARG_INT32(2);
        if (n < 1)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("emu2_describe: max_new_tokens must be at least 1, got %d", n)));
        if (n > emu2_guc_max_new_tokens)
            ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                            errmsg("max_new_tokens %d is above emu2.max_new_tokens (%d)", n, emu2_guc_max_new_tokens)));
        params.max_new_tokens = n;
    }
    char *prompt = psprintf("[<IMG_PLH>]%s", question);
    check_placeholders(prompt, 1);
    PG_RETURN_TEXT_P(reply_to_text(emu2_pg_call(EMU2_KIND_TEXT, prompt, &image, 1, &params)));
}

/* The (prompt text, images bytea[], options jsonb) arguments emu2_generate and emu2_generate_image share:
 * NULLs are refused in FN's name (with HINT, if any, for a NULL array), the placeholders must match the
 * images. Returns the prompt in UTF-8. */
static char *prompt_images_options(FunctionCallInfo fcinfo, const char *fn, const char *hint, bool for_image,
                                   Emu2Image **imgs, int *n, Emu2Params *params)
{
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s: the prompt is NULL", fn)));
    if (PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s: the image array is NULL", fn),
                        hint ? errhint("%s", hint) : 0));
    char *prompt = prompt_to_utf8(PG_GETARG_TEXT_PP(0));
    *n = 0;
    *imgs = images_from_array(PG_GETARG_ARRAYTYPE_P(1), n);
    check_placeholders(prompt, *n);
    emu2_pg_params_init(params);
    emu2_pg_params_from_jsonb(params, options_arg(fcinfo, 2), for_image);
    return prompt;
}

/* emu2_generate(prompt text, images bytea[], options jsonb = NULL) */
Datum emu2_sql_generate(PG_FUNCTION_ARGS)
{
    Emu2Image *imgs;
    int n;
    Emu2Params params;
    char *prompt = prompt_images_options(fcinfo, "emu2_generate", "Pass '{}' for a prompt without images.", false,
                                         &imgs, &n, &params);
    PG_RETURN_TEXT_P(reply_to_text(emu2_pg_call(EMU2_KIND_TEXT, prompt, imgs, n, &params)));
}

/* emu2_generate_image(prompt text, images bytea[] = '{}', options jsonb = NULL) RETURNS bytea (PNG) */
Datum emu2_sql_generate_image(PG_FUNCTION_ARGS)
{
    Emu2Image *imgs;
    int n;
    Emu2Params params;
    char *prompt = prompt_images_options(fcinfo, "emu2_generate_image", NULL, true, &imgs, &n, &params);
    PG_RETURN_BYTEA_P(emu2_pg_call(EMU2_KIND_IMAGE, prompt, imgs, n, &params));
}
