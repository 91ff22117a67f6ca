/* bench_decode.c: the engine's side of the llama.cpp comparison (tests/bench/run_llama_cpp.sh).
 * Through the public API only (emu2.h): a text-only prompt of exactly P tokens (BOS included), then G
 * greedy tokens with EOS suppressed (min_length), timed from the streaming callback:
 *   prefill = call start .. first token chosen   (P prompt tokens -> tokens/s)
 *   decode  = first token .. last token chosen   (G - 1 one-token steps -> tokens/s)
 * The llama.cpp side (bench_llama.py) is fed the prompt ids printed here and times the same steps.
 * Output: JSON lines on stdout, a readable summary on stderr.
 *
 *   bench_decode MODEL_DIR [--threads T] [--quant none|int8|int4] [--prompt-tokens P] [--gen G]
 *                [--repeats R] [--weights LABEL] [--precision f32|bf16] [--print-prompt-ids]
 * --print-prompt-ids loads no weights: it prints {"bench":"prompt","ids":[...]} and exits.
 * A quantization the engine refuses prints {"status":"not available","reason":...} and exits 0.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../bench_util.h"

#include "emu2.h"

#define MAX_REPEATS 64
#define MAX_TOKENS 4096

typedef struct args {
    const char *dir, *quant, *weights, *precision;
    int threads, prompt_tokens, gen, repeats, print_prompt_ids;
} args;

/* What the streaming callback records: the time each token was chosen, and its id. */
typedef struct token_log {
    double t[MAX_TOKENS];
    int32_t id[MAX_TOKENS];
    int n;
} token_log;

static int on_token(void *user, int32_t id, const char *piece)
{
    (void)piece;
    token_log *log = user;
    if (log->n < MAX_TOKENS) {
        log->t[log->n] = bench_now();
        log->id[log->n] = id;
        log->n++;
    }
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return 0;
    *out = (int)v;
    return 1;
}

static int parse_args(int argc, char **argv, args *a)
{
    *a = (args){.quant = "none", .weights = "stored", .threads = 1, .prompt_tokens = 128, .gen = 128, .repeats = 3};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        int ok = 1;
        if (!strcmp(o, "--print-prompt-ids")) {
            a->print_prompt_ids = 1;
            continue;
        }
        if (o[0] != '-') {
            ok = !a->dir;
            a->dir = o;
        } else if (!strcmp(o, "--threads"))
            ok = parse_int(v, 1, 1024, &a->threads);
        else if (!strcmp(o, "--quant"))
            a->quant = v;
        else if (!strcmp(o, "--weights"))
            a->weights = v;
        else if (!strcmp(o, "--precision"))
            a->precision = v;
        else if (!strcmp(o, "--prompt-tokens"))
            ok = parse_int(v, 2, MAX_TOKENS, &a->prompt_tokens);
        else if (!strcmp(o, "--gen"))
            ok = parse_int(v, 2, MAX_TOKENS - 1, &a->gen);
        else if (!strcmp(o, "--repeats"))
            ok = parse_int(v, 1, MAX_REPEATS, &a->repeats);
        else
            ok = 0;
        if (!ok || (o[0] == '-' && !*v)) {
            fprintf(stderr, "bench_decode: bad argument '%s' %s\n", o, o[0] == '-' ? v : "");
            return 0;
        }
        if (o[0] == '-')
            i++; /* the option's value */
    }
    if (!a->dir)
        fprintf(stderr, "usage: bench_decode MODEL_DIR [--threads T] [--quant none|int8|int4] [--prompt-tokens P] "
                        "[--gen G] [--repeats R] [--weights LABEL] [--precision f32|bf16] [--print-prompt-ids]\n");
    return a->dir != NULL;
}

/* A prompt of plain words that tokenizes to exactly n ids (BOS included). Common words are one
 * SentencePiece token each with their leading space; a word that would overshoot is skipped. */
static char *make_prompt(emu2_model *m, int n)
{
    static const char *const words[] = {
        "The", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog", "and", "then", "runs", "into",
        "a", "small", "house", "near", "river", "where", "children", "play", "with", "red", "ball", "every",
        "day", "after", "school", "is", "over", "in", "summer", "time", "when", "sun", "shines", "on", "water"};
    const size_t n_words = sizeof words / sizeof *words;
    size_t cap = (size_t)n * 16 + 64, len = 0;
    char *text = calloc(cap, 1);
    if (!text)
        return NULL;
    for (size_t w = 0, misses = 0; misses < n_words; w++) {
        const char *word = words[w % n_words];
        size_t add = strlen(word) + (len ? 1 : 0);
        if (len + add + 1 > cap)
            break;
        snprintf(text + len, cap - len, "%s%s", len ? " " : "", word);
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (emu2_tokenize(m, text, EMU2_TOK_NO_PLACEHOLDERS, &ids, &n_ids) != EMU2_OK) {
            free(text);
            return NULL;
        }
        emu2_free(ids);
        if (n_ids == (size_t)n)
            return text;
        if (n_ids > (size_t)n) {
            text[len] = '\0'; /* this word overshoots: try the next */
            misses++;
        } else {
            len += add;
            misses = 0;
        }
    }
    free(text);
    return NULL;
}

static void print_ids(const char *key, const int32_t *ids, size_t n)
{
    printf("\"%s\":[", key);
    for (size_t i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", (int)ids[i]);
    printf("]");
}

static void emit(const args *a, const char *bench, int items, const double *t, int n, const token_log *last)
{
    double s[MAX_REPEATS];
    memcpy(s, t, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, bench_cmp_double);
    double med = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    printf("{\"impl\":\"emu2\",\"bench\":\"%s\",\"weights\":\"%s\",\"quant\":\"%s\",\"threads\":%d,"
           "\"unit\":\"tokens/s\",\"items\":%d,\"times_s\":[",
           bench, a->weights, a->quant, a->threads, items);
    for (int i = 0; i < n; i++)
        printf("%s%.6f", i ? "," : "", t[i]);
    printf("],\"median_s\":%.6f,\"rate\":%.4f", med, items / med);
    if (last) {
        printf(",");
        print_ids("generated_ids", last->id, (size_t)last->n);
    }
    printf("}\n");
    fflush(stdout);
    fprintf(stderr, "emu2 %-5s %-4s %-7s: %9.2f tokens/s (min %.2f max %.2f)\n", a->weights, a->quant, bench,
            items / med, items / s[n - 1], items / s[0]);
}

static int not_available(const args *a, const char *why)
{
    printf("{\"impl\":\"emu2\",\"bench\":\"status\",\"weights\":\"%s\",\"quant\":\"%s\",\"threads\":%d,"
           "\"status\":\"not available\",\"reason\":\"",
           a->weights, a->quant, a->threads);
    for (const char *c = why; *c; c++) /* JSON string: escape what the message may hold */
        if (*c == '"' || *c == '\\')
            printf("\\%c", *c);
        else if ((unsigned char)*c >= 0x20)
            putchar(*c);
    printf("\"}\n");
    fprintf(stderr, "emu2 %s %s: not available: %s\n", a->weights, a->quant, why);
    return 0;
}

/* One greedy generation of exactly gen tokens; fills log. */
static int generate(emu2_model *m, const char *prompt, int gen, token_log *log)
{
    emu2_gen_options o;
    emu2_gen_options_init(&o);
    o.num_beams = 1;
    o.do_sample = 0;
    o.max_new_tokens = gen;
    o.min_length = gen + 1; /* lengths count the BOS: EOS is never chosen, every run makes gen tokens */
    o.on_token = on_token;
    o.on_token_user = log;
    log->n = 0;
    char *text = NULL;
    if (emu2_generate(m, prompt, NULL, 0, &o, &text) != EMU2_OK) {
        fprintf(stderr, "bench_decode: generate failed: %s\n", emu2_model_last_error(m));
        return 0;
    }
    emu2_free(text);
    if (log->n != gen) {
        fprintf(stderr, "bench_decode: %d tokens generated, expected %d\n", log->n, gen);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    args a;
    if (!parse_args(argc, argv, &a))
        return 2;
    int quantized = strcmp(a.quant, "none") != 0;
    emu2_load_options lo;
    emu2_load_options_init(&lo);
    lo.threads = a.threads;
    lo.device = "cpu";
    lo.quant = quantized ? a.quant : NULL;
    lo.precision = a.precision;
    if (a.print_prompt_ids)
        lo.flags |= EMU2_LOAD_NO_WEIGHTS, lo.quant = NULL;
    emu2_model *m = NULL;
    emu2_error err;
    if (emu2_model_load(a.dir, &lo, &m, &err) != EMU2_OK) {
        if (quantized && !a.print_prompt_ids)
            return not_available(&a, err.message);
        fprintf(stderr, "bench_decode: %s\n", err.message);
        return 1;
    }
    int rc = 1;
    char *prompt = make_prompt(m, a.prompt_tokens);
    if (!prompt) {
        fprintf(stderr, "bench_decode: could not build a prompt of exactly %d tokens\n", a.prompt_tokens);
        goto done;
    }
    if (a.print_prompt_ids) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (emu2_tokenize(m, prompt, EMU2_TOK_NO_PLACEHOLDERS, &ids, &n) != EMU2_OK)
            goto done;
        printf("{\"bench\":\"prompt\",\"text\":\"%s\",", prompt); /* plain words: nothing to escape */
        print_ids("ids", ids, n);
        printf("}\n");
        emu2_free(ids);
        rc = 0;
        goto done;
    }
    static token_log log; /* large: not on the stack */
    /* Warm-up (untimed): faults the memory-mapped weights in and runs every kernel once. */
    if (!generate(m, prompt, 2, &log))
        goto done;
    double prefill[MAX_REPEATS], decode[MAX_REPEATS];
    for (int r = 0; r < a.repeats; r++) {
        double t0 = bench_now();
        if (!generate(m, prompt, a.gen, &log))
            goto done;
        prefill[r] = log.t[0] - t0;
        decode[r] = log.t[a.gen - 1] - log.t[0];
    }
    emit(&a, "prefill", a.prompt_tokens, prefill, a.repeats, NULL);
    emit(&a, "decode", a.gen - 1, decode, a.repeats, &log);
    rc = 0;
done:
    free(prompt);
    emu2_model_free(m);
    return rc;
}
