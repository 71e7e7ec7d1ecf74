// edgekit_fuzz_artifact: loads every file named on the command line through the C API and, when a load succeeds,
// evaluates a few tokens. Prints `<STATUS> <file>: <message>` per file and a summary line; exits 1 when a failed
// call leaves no message or returns a status outside the enum (a crash fails the caller's test by itself).
//
// tests/engines/test_capi.py writes a corpus of mutated artifacts and runs the same loop in Python over ctypes; this
// driver exists for the sanitizer build, where the whole library is compiled with -fsanitize=address,undefined:
//   cmake -S . -B build-asan -G Ninja -DEDGEKIT_BUILD_PYTHON=OFF -DEDGEKIT_BUILD_TESTS=ON \
//         -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all"
//   EDGEKIT_FUZZ_DRIVER=build-asan/edgekit_fuzz_artifact pytest tests/engines/test_capi.py -k fuzz
#include <cstdio>
#include <cstring>

#include "edgekit.h"

int main(int argc, char** argv) {
    int loaded = 0, rejected = 0, bad = 0;
    ek_load_params params = ek_load_params_default();
    params.max_ctx = 8;
    params.n_threads = 1;
    for (int i = 1; i < argc; ++i) {
        ek_model* m = nullptr;
        const ek_status st = ek_model_load(argv[i], &params, &m);
        if (st == EK_OK) {
            ++loaded;
            const int32_t tokens[2] = {0, ek_n_vocab(m) - 1};
            const ek_status ev = ek_eval(m, tokens, 2, 1);
            int32_t rows = 0;
            const float* logits = ek_get_logits(m, &rows);
            if (ev != EK_OK || !logits || rows != 2) {
                std::printf("BAD %s: eval after a successful load gave %s: %s\n", argv[i], ek_status_name(ev),
                            ek_last_error());
                ++bad;
            } else {
                std::printf("EK_OK %s\n", argv[i]);
            }
            ek_model_free(m);
            continue;
        }
        ++rejected;
        const char* msg = ek_last_error();
        if (st < EK_ERR_INVALID_ARGUMENT || st > EK_ERR_INTERNAL || m != nullptr || !msg || !*msg) {
            std::printf("BAD %s: status %d, message '%s'\n", argv[i], (int)st, msg ? msg : "(null)");
            ++bad;
        } else {
            std::printf("%s %s: %s\n", ek_status_name(st), argv[i], msg);
        }
    }
    std::printf("fuzz_artifact: %d files, %d loaded, %d rejected, %d bad\n", argc - 1, loaded, rejected, bad);
    return bad ? 1 : 0;
}
