/* scheduler.h: EulerDiscreteScheduler (diffusers 0.24 semantics, EMU2-SPEC.md §6.5): scaled_linear
 * (or linear) betas, sigma(t) = sqrt((1 - abar_t) / abar_t), timestep spacing "leading" (Emu2-Gen),
 * "trailing" or "linspace", steps_offset, epsilon prediction, no Karras sigmas, s_churn 0. */
#ifndef EMU2_DIFFUSION_SCHEDULER_H
#define EMU2_DIFFUSION_SCHEDULER_H

#include <stddef.h>

#include "emu2.h"

typedef enum dif_spacing { DIF_SPACING_LEADING = 0, DIF_SPACING_TRAILING, DIF_SPACING_LINSPACE } dif_spacing;

typedef struct dif_scheduler_config {
    int num_train_timesteps; /* 1000 */
    double beta_start, beta_end;
    int scaled_linear;       /* 1: scaled_linear, 0: linear */
    dif_spacing spacing;
    int steps_offset;
} dif_scheduler_config;

/* The published Emu2-Gen config. */
void dif_scheduler_config_default(dif_scheduler_config *c);
/* Reads DIR/scheduler_config.json (missing keys: the defaults above; unsupported settings are errors). */
emu2_status dif_scheduler_config_load(const char *dir, dif_scheduler_config *c, emu2_error *err);

typedef struct dif_schedule {
    size_t steps;
    float *timesteps;  /* [steps], the values the UNet sees */
    float *sigmas;     /* [steps + 1], last 0 */
    float init_noise_sigma;
} dif_schedule;

/* set_timesteps(steps): 1 <= steps <= num_train_timesteps. */
emu2_status dif_schedule_make(const dif_scheduler_config *c, size_t steps, dif_schedule *out, emu2_error *err);
void dif_schedule_free(dif_schedule *s);

#endif
