/* generate: greedy decoding of an edgekit artifact through the C API (edgekit.h), in plain C99.
 *
 *   generate MODEL.ekq [-n N] [-c CTX] [-t THREADS] [TOKEN ...]
 *   generate MODEL.ekq [-n N] [-c CTX] [-t THREADS] -p "PROMPT TEXT"
 *
 * With token ids: prefills the ids given on the command line (default: 1 2 3 4), then picks the most likely next
 * token N times (default 16), feeding each back with ek_decode, and prints the new ids on one line of stdout.
 * With -p: text in, text out through the artifact's tokenizer (ek_generate, greedy, stopping at EOS), the new text
 * streamed to stdout as it is made. Timings go to stderr; exits 1 with ek_last_error() on any failure.
 *
 * Build against an installed edgekit (paths from `python -m edgekit.native.capi`):
 *   cc -std=c99 -O2 generate.c -I"$INCLUDE_DIR" -L"$LIB_DIR" -ledgekit -Wl,-rpath,"$LIB_DIR" -o generate
 * or with CMake: -DEDGEKIT_BUILD_EXAMPLES=ON builds it as edgekit_generate next to libedgekit.so.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgekit.h"

#define MAX_PROMPT 4096

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Parses a whole decimal int32 argument; 0 on success. */
static int parse_int(const char* s, long lo, long hi, int32_t* out) {
    char* end = NULL;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = (int32_t)v;
    return 0;
}

/* Index of the largest logit; the first one on ties (as numpy's argmax). */
static int32_t argmax(const float* x, int32_t n) {
    int32_t best = 0, i;
    for (i = 1; i < n; ++i)
        if (x[i] > x[best]) best = i;
    return best;
}

static int usage(const char* prog) {
    fprintf(stderr, "usage: %s MODEL.ekq [-n N] [-c CTX] [-t THREADS] [TOKEN ... | -p PROMPT]\n", prog);
    return 2;
}

/* ek_generate's callback: the new text straight to stdout. */
static int print_text(void* user_data, int32_t token, const char* text, int32_t n_text) {
    (void)user_data;
    (void)token;
    fwrite(text, 1, (size_t)n_text, stdout);
    fflush(stdout);
    return 0;
}

static int fail(const char* what, ek_status st) {
    fprintf(stderr, "error: %s failed (%s): %s\n", what, ek_status_name(st), ek_last_error());
    return 1;
}

int main(int argc, char** argv) {
    static int32_t prompt[MAX_PROMPT];
    int32_t n_prompt = 0, n_new = 16, i;
    const char* path = NULL;
    const char* text = NULL;
    ek_load_params params = ek_load_params_default();
    ek_model* model = NULL;
    ek_status st;
    double t0, t1, t2;
    int rc = 0;

    for (i = 1; i < argc; ++i) {
        const char* a = argv[i];
        if ((!strcmp(a, "-n") || !strcmp(a, "-c") || !strcmp(a, "-t")) && i + 1 < argc) {
            int32_t* dst = a[1] == 'n' ? &n_new : a[1] == 'c' ? &params.max_ctx : &params.n_threads;
            if (parse_int(argv[++i], 0, INT_MAX, dst) != 0) return usage(argv[0]);
        } else if (!strcmp(a, "-p") && i + 1 < argc) {
            text = argv[++i];
        } else if (!path) {
            path = a;
        } else if (n_prompt < MAX_PROMPT && parse_int(a, 0, INT32_MAX, &prompt[n_prompt]) == 0) {
            ++n_prompt;
        } else {
            return usage(argv[0]);
        }
    }
    if (!path) return usage(argv[0]);
    if (n_prompt == 0) {
        for (i = 0; i < 4; ++i) prompt[i] = i + 1;
        n_prompt = 4;
    }

    t0 = now_s();
    st = ek_model_load(path, &params, &model);
    if (st != EK_OK) return fail("loading the model", st);
    t1 = now_s();
    if (text) {
        ek_sampling sampling = ek_sampling_default();
        sampling.max_tokens = n_new;
        st = ek_generate(model, text, &sampling, print_text, NULL, &n_new);
        printf("\n");
        if (st != EK_OK) rc = fail("generating", st);
        n_prompt = 0;
        if (ek_tokenize(model, text, -1, 0, NULL, 0, &n_prompt) != EK_ERR_BUFFER_TOO_SMALL) n_prompt = 0;
    } else if ((st = ek_eval(model, prompt, n_prompt, 0)) != EK_OK) {
        rc = fail("prefill", st);
    } else {
        for (i = 0; i < n_new; ++i) {
            const int32_t next = argmax(ek_get_logits(model, NULL), ek_n_vocab(model));
            printf(i ? " %d" : "%d", (int)next);
            if (i + 1 == n_new) break; /* the last token needs no logits after it */
            st = ek_decode(model, next);
            if (st == EK_ERR_CONTEXT_FULL) {
                fprintf(stderr, "stopping: the context of %d tokens is full\n", (int)ek_n_ctx(model));
                break;
            }
            if (st != EK_OK) {
                rc = fail("decoding", st);
                break;
            }
        }
        printf("\n");
    }
    t2 = now_s();
    fprintf(stderr, "load %.3f s, prompt %d tokens + %d generated in %.3f s\n", t1 - t0, (int)n_prompt, (int)n_new,
            t2 - t1);
    ek_model_free(model);
    return rc;
}
