/* gucs.c: the emu2.* settings. Model and device settings are superuser-only and read by the worker
 * (PGC_SIGHUP: postgresql.conf or ALTER SYSTEM, then pg_reload_conf()); limits are PGC_SUSET, checked
 * in the calling backend. */
#include "emu2_pg.h"

#include <string.h>

#include "utils/guc.h"

char *emu2_guc_model_path = NULL;
char *emu2_guc_device = NULL;
int emu2_guc_quant = EMU2_PG_QUANT_NONE;
int emu2_guc_precision = EMU2_PG_PRECISION_F32;
int emu2_guc_threads = 0;
int emu2_guc_max_batch = 8;
int emu2_guc_batch_wait_ms = 2;
bool emu2_guc_continuous = false;
int emu2_guc_max_image_bytes = 16 * 1024; /* kB */
int emu2_guc_max_pixels = 50 * 1000 * 1000;
int emu2_guc_max_images = 16;
int emu2_guc_max_new_tokens = 512;
int emu2_guc_request_timeout = 0;

static const struct config_enum_entry quant_options[] = {
    {"none", EMU2_PG_QUANT_NONE, false},
    {"int8", EMU2_PG_QUANT_INT8, false},
    {"int4", EMU2_PG_QUANT_INT4, false},
    {NULL, 0, false},
};

static const struct config_enum_entry precision_options[] = {
    {"f32", EMU2_PG_PRECISION_F32, false},
    {"bf16", EMU2_PG_PRECISION_BF16, false},
    {NULL, 0, false},
};

const char *emu2_pg_precision_name(int precision)
{
    return precision == EMU2_PG_PRECISION_BF16 ? "bf16" : "f32";
}

const char *emu2_pg_quant_name(int quant)
{
    return quant == EMU2_PG_QUANT_INT8 ? "int8" : quant == EMU2_PG_QUANT_INT4 ? "int4" : "none";
}

/* "auto", "cpu", "cuda", "cuda:N" or a list "cuda:N,M,..." (layers split over the GPUs); the
 * engine says later whether those devices are usable. */
static bool check_device(char **newval, void **extra, GucSource source)
{
    const char *v = *newval;
    if (!v || !strcmp(v, "auto") || !strcmp(v, "cpu") || !strcmp(v, "cuda"))
        return true;
    if (!strncmp(v, "cuda:", 5) && v[5]) {
        const char *d = v + 5;
        int digits = 0, ok = 1;
        for (; *d && ok; d++) {
            if (*d >= '0' && *d <= '9')
                ok = ++digits <= 3;
            else if (*d == ',')
                ok = digits > 0, digits = 0;
            else
                ok = 0;
        }
        if (ok && digits > 0)
            return true;
    }
    GUC_check_errdetail("emu2.device must be auto, cpu, cuda, cuda:N or cuda:N,M,..., not \"%s\".", v);
    return false;
}

void emu2_pg_define_gucs(void)
{
    DefineCustomStringVariable("emu2.model_path", "Folder of the model the emu2 worker loads.",
                               "config.json, tokenizer and weights as Hugging Face publishes them. Empty: no model.",
                               &emu2_guc_model_path, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
    DefineCustomStringVariable("emu2.device", "Device the emu2 worker runs the model on: auto, cpu, cuda, cuda:N.",
                               NULL, &emu2_guc_device, "auto", PGC_SIGHUP, GUC_SUPERUSER_ONLY, check_device,
                               NULL, NULL);
    DefineCustomEnumVariable("emu2.quant", "Weight-only quantization of the language model at load: none, int8, int4.",
                             NULL, &emu2_guc_quant, EMU2_PG_QUANT_NONE, quant_options, PGC_SIGHUP,
                             GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
    DefineCustomEnumVariable("emu2.precision",
                             "Activations of linears with bf16 weights: f32 (exact) or bf16 (bf16 dot products).",
                             "bf16 needs a CPU with AVX512_BF16 (else f32, said in emu2_status().device); it "
                             "speeds up prefill and the vision tower about 2x at a first-step logits cosine >= 0.9999.",
                             &emu2_guc_precision, EMU2_PG_PRECISION_F32, precision_options, PGC_SIGHUP,
                             GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
    DefineCustomIntVariable("emu2.threads", "CPU threads of the emu2 worker (0 = all cores).", NULL,
                            &emu2_guc_threads, 0, 0, 1024, PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
    DefineCustomIntVariable("emu2.max_batch", "Most requests the emu2 worker runs as one batch.", NULL,
                            &emu2_guc_max_batch, 8, 1, EMU2_PG_MAX_BATCH, PGC_SIGHUP, 0, NULL, NULL, NULL);
    DefineCustomIntVariable("emu2.batch_wait", "How long the worker waits for more requests before a batch starts.",
                            "Only when other sessions are active; 0 = never wait.", &emu2_guc_batch_wait_ms, 2, 0,
                            1000, PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
    DefineCustomBoolVariable("emu2.continuous_batching",
                             "Text requests join the running decode between steps (else: static batches).",
                             "Off (default): requests queued while a batch decodes wait for the whole batch; "
                             "on this CPU it gives about 10 % more captions/s, continuous batching lower latency.",
                             &emu2_guc_continuous, false, PGC_SIGHUP, 0, NULL, NULL, NULL);
    DefineCustomIntVariable("emu2.max_image_bytes", "Largest encoded image a call may pass.", NULL,
                            &emu2_guc_max_image_bytes, 16 * 1024, 1, 1024 * 1024, PGC_SUSET, GUC_UNIT_KB, NULL,
                            NULL, NULL);
    DefineCustomIntVariable("emu2.max_pixels", "Largest width*height of an image a call may pass.",
                            "Checked on the image header before decoding (decompression bombs).", &emu2_guc_max_pixels,
                            50 * 1000 * 1000, 1, 100 * 1000 * 1000, PGC_SUSET, 0, NULL, NULL, NULL);
    DefineCustomIntVariable("emu2.max_images", "Most images one call may pass.", NULL, &emu2_guc_max_images, 16, 1,
                            256, PGC_SUSET, 0, NULL, NULL, NULL);
    DefineCustomIntVariable("emu2.max_new_tokens", "Most new tokens one call may ask for.", NULL,
                            &emu2_guc_max_new_tokens, 512, 1, 8192, PGC_SUSET, 0, NULL, NULL, NULL);
    DefineCustomIntVariable("emu2.request_timeout", "Longest time one call waits for the worker (0 = no limit).",
                            "statement_timeout applies as well.", &emu2_guc_request_timeout, 0, 0, INT_MAX,
                            PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
    MarkGUCPrefixReserved("emu2");
}
