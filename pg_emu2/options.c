/* options.c: generation parameters from a jsonb object, e.g.
 *   {"num_beams": 1, "max_new_tokens": 16, "do_sample": true, "temperature": 0.7, "seed": 42}
 * Keys are the engine's emu2_gen_options fields; an unknown key, a wrong type or a value out of range
 * is an error (22023) that names the key. emu2.max_new_tokens caps max_new_tokens (54000). */
#include "emu2_pg.h"

#include <math.h>
#include <string.h>

#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

void emu2_pg_params_init(Emu2Params *p)
{
    memset(p, 0, sizeof *p);
    /* the engine's defaults (emu2_gen_options_init), with max_new_tokens capped by the GUC */
    p->max_new_tokens = Min(64, emu2_guc_max_new_tokens);
    p->num_beams = 5;
    p->length_penalty = -1.0f;
    p->min_length = 1;
    p->do_sample = 0;
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = 50;
    p->repetition_penalty = 1.0f;
    p->img_width = 0;
    p->img_height = 0;
    p->img_steps = 0;
    p->img_guidance = -1.0f;
    p->seed = 0;
}

static void bad_option(const char *key, const char *why)
{
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("emu2 option \"%s\" %s", key, why)));
}

static void unknown_option(const char *key, bool image)
{
    ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("emu2 option \"%s\" is unknown", key),
                    image ? errhint("Options of emu2_generate_image: width, height, steps, guidance, seed.")
                               : errhint("Options: max_new_tokens, num_beams, length_penalty, min_length, do_sample, "
                                         "temperature, top_p, top_k, repetition_penalty, seed.")));
}

static double number_of(const char *key, const JsonbValue *v)
{
    if (v->type != jbvNumeric)
        bad_option(key, "must be a number");
    double d = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, NumericGetDatum(v->val.numeric)));
    if (isnan(d) || isinf(d))
        bad_option(key, "must be a finite number");
    return d;
}

static int32 int_of(const char *key, const JsonbValue *v, int32 lo, int32 hi)
{
    double d = number_of(key, v);
    if (d != floor(d) || d < lo || d > hi)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("emu2 option \"%s\" must be an integer in %d..%d, got %g", key, lo, hi, d)));
    return (int32)d;
}

static float4 float_of(const char *key, const JsonbValue *v, double lo, double hi, bool lo_open)
{
    double d = number_of(key, v);
    if (d < lo || d > hi || (lo_open && d == lo))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("emu2 option \"%s\" must be in %s%g, %g], got %g", key, lo_open ? "(" : "[", lo, hi,
                               d)));
    return (float4)d;
}

static void apply_seed(Emu2Params *p, const char *key, const JsonbValue *v)
{
    double d = number_of(key, v);
    if (d != floor(d) || d < 0 || d > 9007199254740992.0) /* exact in a double */
        bad_option(key, "must be an integer in 0..2^53");
    p->seed = (uint64)d;
}

static void apply_image_option(Emu2Params *p, const char *key, const JsonbValue *v)
{
    if (!strcmp(key, "width") || !strcmp(key, "height")) {
        int32 n = int_of(key, v, 8, 4096);
        if (n % 8)
            bad_option(key, "must be a multiple of 8");
        *(key[0] == 'w' ? &p->img_width : &p->img_height) = n;
    } else if (!strcmp(key, "steps"))
        p->img_steps = int_of(key, v, 1, 1000);
    else if (!strcmp(key, "guidance"))
        p->img_guidance = float_of(key, v, 0.0, 100.0, false);
    else if (!strcmp(key, "seed"))
        apply_seed(p, key, v);
    else
        unknown_option(key, true);
}

static void apply_option(Emu2Params *p, const char *key, const JsonbValue *v, bool image)
{
    if (image) {
        apply_image_option(p, key, v);
        return;
    }
    if (!strcmp(key, "max_new_tokens")) {
        int32 n = int_of(key, v, 1, 8192);
        if (n > emu2_guc_max_new_tokens)
            ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                            errmsg("max_new_tokens %d is above emu2.max_new_tokens (%d)", n, emu2_guc_max_new_tokens)));
        p->max_new_tokens = n;
    } else if (!strcmp(key, "num_beams"))
        p->num_beams = int_of(key, v, 1, 64);
    else if (!strcmp(key, "length_penalty"))
        p->length_penalty = float_of(key, v, -1e6, 1e6, false);
    else if (!strcmp(key, "min_length"))
        p->min_length = int_of(key, v, 0, 8192);
    else if (!strcmp(key, "do_sample")) {
        if (v->type != jbvBool)
            bad_option(key, "must be true or false");
        p->do_sample = v->val.boolean ? 1 : 0;
    } else if (!strcmp(key, "temperature"))
        p->temperature = float_of(key, v, 0.0, 1e6, true);
    else if (!strcmp(key, "top_p"))
        p->top_p = float_of(key, v, 0.0, 1.0, true);
    else if (!strcmp(key, "top_k"))
        p->top_k = int_of(key, v, 0, 1 << 30);
    else if (!strcmp(key, "repetition_penalty"))
        p->repetition_penalty = float_of(key, v, 0.0, 1e6, true);
    else if (!strcmp(key, "seed"))
        apply_seed(p, key, v);
    else
        unknown_option(key, false);
}

void emu2_pg_params_from_jsonb(Emu2Params *p, Jsonb *options, bool image)
{
    if (!options)
        return;
    if (!JB_ROOT_IS_OBJECT(options))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("emu2 options must be a JSON object")));
    JsonbIterator *it = JsonbIteratorInit(&options->root);
    JsonbValue v;
    JsonbIteratorToken tok;
    char *key = NULL;
    while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE) {
        if (tok == WJB_KEY)
            key = pnstrdup(v.val.string.val, v.val.string.len);
        else if (tok == WJB_VALUE && key) {
            apply_option(p, key, &v, image);
            pfree(key);
            key = NULL;
        }
    }
}
