/* scheduler.c: Euler discrete schedule (scheduler.h). The beta table and its cumulative product
 * are float32 as diffusers computes them (torch.linspace / cumprod in f32); sigmas interpolate
 * that table linearly at the (possibly fractional) timesteps, as np.interp does. */
#include "diffusion/scheduler.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "io/mapped_file.h"

void dif_scheduler_config_default(dif_scheduler_config *c)
{
    c->num_train_timesteps = 1000;
    c->beta_start = 0.00085;
    c->beta_end = 0.012;
    c->scaled_linear = 1;
    c->spacing = DIF_SPACING_LEADING;
    c->steps_offset = 1;
}

static emu2_status get_string(json_t *o, const char *key, const char *def, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = json_is_string(v) ? json_string_value(v) : def;
    return EMU2_OK;
}

emu2_status dif_scheduler_config_load(const char *dir, dif_scheduler_config *c, emu2_error *err)
{
    dif_scheduler_config_default(c);
    char path[1200], *text = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/scheduler_config.json", dir);
    emu2_status st = emu2_read_small_file(path, 1u << 20, &text, &len, err);
    if (st != EMU2_OK)
        return st;
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!json_is_object(o)) {
        json_decref(o);
        return emu2_fail(err, EMU2_ERR_FORMAT, "%s: not a JSON object", path);
    }
    const char *s;
    json_t *v;
    if ((v = json_object_get(o, "num_train_timesteps")) && json_is_integer(v))
        c->num_train_timesteps = (int)json_integer_value(v);
    if ((v = json_object_get(o, "beta_start")) && json_is_number(v))
        c->beta_start = json_number_value(v);
    if ((v = json_object_get(o, "beta_end")) && json_is_number(v))
        c->beta_end = json_number_value(v);
    if ((v = json_object_get(o, "steps_offset")) && json_is_integer(v))
        c->steps_offset = (int)json_integer_value(v);
    if (c->num_train_timesteps < 2 || c->num_train_timesteps > 100000 || !(c->beta_start > 0) ||
        !(c->beta_end > c->beta_start) || c->beta_end >= 1 || c->steps_offset < 0 || c->steps_offset > 1000)
        st = emu2_fail(err, EMU2_ERR_FORMAT, "%s: num_train_timesteps, betas or steps_offset out of range", path);
    get_string(o, "beta_schedule", "scaled_linear", &s);
    if (st == EMU2_OK && strcmp(s, "scaled_linear") && strcmp(s, "linear"))
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: beta_schedule \"%s\" (want scaled_linear or linear)", path, s);
    c->scaled_linear = !strcmp(s, "scaled_linear");
    get_string(o, "timestep_spacing", "leading", &s);
    if (!strcmp(s, "leading"))
        c->spacing = DIF_SPACING_LEADING;
    else if (!strcmp(s, "trailing"))
        c->spacing = DIF_SPACING_TRAILING;
    else if (!strcmp(s, "linspace"))
        c->spacing = DIF_SPACING_LINSPACE;
    else if (st == EMU2_OK)
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: timestep_spacing \"%s\"", path, s);
    get_string(o, "prediction_type", "epsilon", &s);
    if (st == EMU2_OK && strcmp(s, "epsilon"))
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: prediction_type \"%s\" (want epsilon)", path, s);
    get_string(o, "interpolation_type", "linear", &s);
    if (st == EMU2_OK && strcmp(s, "linear"))
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: interpolation_type \"%s\" (want linear)", path, s);
    if (st == EMU2_OK && json_is_true(json_object_get(o, "use_karras_sigmas")))
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: use_karras_sigmas is not supported", path);
    if (st == EMU2_OK && (v = json_object_get(o, "trained_betas")) && !json_is_null(v))
        st = emu2_fail(err, EMU2_ERR_UNSUPPORTED, "%s: trained_betas are not supported", path);
    json_decref(o);
    return st;
}

emu2_status dif_schedule_make(const dif_scheduler_config *c, size_t steps, dif_schedule *out, emu2_error *err)
{
    memset(out, 0, sizeof *out);
    const size_t T = (size_t)c->num_train_timesteps;
    if (steps < 1 || steps > T)
        return emu2_fail(err, EMU2_ERR_INVALID_ARGUMENT, "steps must be in 1..%zu, got %zu", T, steps);
    float *sig_table = malloc(T * sizeof *sig_table);
    double *ts = malloc(steps * sizeof *ts);
    out->timesteps = malloc(steps * sizeof *out->timesteps);
    out->sigmas = malloc((steps + 1) * sizeof *out->sigmas);
    if (!sig_table || !ts || !out->timesteps || !out->sigmas) {
        free(sig_table);
        free(ts);
        dif_schedule_free(out);
        return emu2_fail(err, EMU2_ERR_NOMEM, "out of memory");
    }
    /* betas: torch.linspace(a, b, T, float32) (** 2 for scaled_linear); abar = cumprod(1 - beta) in f32 */
    const double a = c->scaled_linear ? sqrt(c->beta_start) : c->beta_start;
    const double b = c->scaled_linear ? sqrt(c->beta_end) : c->beta_end;
    const float af = (float)a, bf = (float)b, stepf = (float)((b - a) / (double)(T - 1));
    float abar = 1.0f;
    for (size_t s = 0; s < T; s++) {
        /* torch.linspace fills the first half from the start and the second half from the end */
        float lin = s < T / 2 ? af + stepf * (float)s : bf - stepf * (float)(T - 1 - s);
        float beta = c->scaled_linear ? lin * lin : lin;
        abar *= 1.0f - beta;
        sig_table[s] = sqrtf((1.0f - abar) / abar);
    }
    for (size_t i = 0; i < steps; i++) {
        size_t k = steps - 1 - i; /* timesteps descend */
        if (c->spacing == DIF_SPACING_LEADING)
            ts[i] = (double)(k * (T / steps)) + c->steps_offset;
        else if (c->spacing == DIF_SPACING_TRAILING)
            ts[i] = nearbyint((double)T - (double)i * ((double)T / (double)steps)) - 1.0;
        else
            ts[i] = (double)(T - 1) * (double)k / (double)(steps > 1 ? steps - 1 : 1);
        out->timesteps[i] = (float)ts[i];
        double at = ts[i] > (double)(T - 1) ? (double)(T - 1) : (ts[i] < 0 ? 0 : ts[i]); /* np.interp clamps */
        double lo = floor(at), f = at - lo;
        size_t l = (size_t)lo, h = l + 1 < T ? l + 1 : l;
        out->sigmas[i] = (float)((1.0 - f) * sig_table[l] + f * sig_table[h]);
    }
    out->sigmas[steps] = 0.0f;
    out->steps = steps;
    float max_sigma = 0;
    for (size_t i = 0; i < steps; i++)
        if (out->sigmas[i] > max_sigma)
            max_sigma = out->sigmas[i];
    out->init_noise_sigma = c->spacing == DIF_SPACING_LEADING ? (float)sqrt((double)max_sigma * max_sigma + 1.0)
                                                               : max_sigma;
    free(sig_table);
    free(ts);
    return EMU2_OK;
}

void dif_schedule_free(dif_schedule *s)
{
    if (!s)
        return;
    free(s->timesteps);
    free(s->sigmas);
    memset(s, 0, sizeof *s);
}
