// The JNI glue of ai.edgekit.Edgekit (bindings/java/ai/edgekit/Edgekit.java) over the C API (edgekit.h).
//
// Hygiene: every string crosses as UTF-8 bytes (byte[]), never through NewStringUTF / GetStringUTFChars, whose
// "modified UTF-8" encodes U+0000 and characters beyond the BMP differently; the classes and method ids are looked
// up once in JNI_OnLoad (global references: on Android a native thread's FindClass sees only system classes);
// per-token local references are deleted as soon as they are used, so a long generation does not fill the local
// reference table; no JNI call but the exception-safe ones is made while a Java exception is pending, and one that
// the token callback throws stops ek_generate and stays pending, so Java rethrows it.
#include <jni.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "edgekit.h"

namespace {

jclass g_exception = nullptr;       // ai.edgekit.EdgekitException (global ref)
jmethodID g_exception_init = nullptr;
jmethodID g_deliver = nullptr;      // Edgekit.Stream.deliver(int, byte[]) -> boolean

ek_model* model_of(jlong handle) { return reinterpret_cast<ek_model*>(static_cast<intptr_t>(handle)); }

// a new byte[] holding n bytes of p; nullptr with OutOfMemoryError pending when the JVM has no room
jbyteArray to_bytes(JNIEnv* env, const char* p, size_t n) {
    jbyteArray a = env->NewByteArray(static_cast<jsize>(n));
    if (a != nullptr && n > 0) env->SetByteArrayRegion(a, 0, static_cast<jsize>(n), reinterpret_cast<const jbyte*>(p));
    return a;
}

// the bytes of a Java byte[] (nullptr: empty)
std::string from_bytes(JNIEnv* env, jbyteArray a) {
    std::string s;
    if (a == nullptr) return s;
    s.resize(static_cast<size_t>(env->GetArrayLength(a)));
    if (!s.empty()) env->GetByteArrayRegion(a, 0, static_cast<jsize>(s.size()), reinterpret_cast<jbyte*>(&s[0]));
    return s;
}

// throws EdgekitException(status, its name, ek_last_error()) unless an exception is already pending
void throw_status(JNIEnv* env, ek_status st) {
    if (env->ExceptionCheck()) return;
    const char* msg = ek_last_error();
    jbyteArray bytes = to_bytes(env, msg, std::strlen(msg));
    if (bytes == nullptr) return;
    jstring name = env->NewStringUTF(ek_status_name(st));  // ASCII: modified UTF-8 is the same
    if (name == nullptr) return;
    auto* e = static_cast<jthrowable>(env->NewObject(g_exception, g_exception_init, static_cast<jint>(st), name, bytes));
    if (e != nullptr) env->Throw(e);
    env->DeleteLocalRef(e);
    env->DeleteLocalRef(name);
    env->DeleteLocalRef(bytes);
}

struct Stream {
    JNIEnv* env;
    jobject target;  // the Edgekit.Stream
};

// ek_token_callback: hands the token and its UTF-8 piece to Stream.deliver; stops on false or on an exception
int on_token(void* user_data, int32_t token, const char* text, int32_t n_text) {
    auto* s = static_cast<Stream*>(user_data);
    JNIEnv* env = s->env;
    jbyteArray piece = to_bytes(env, text, static_cast<size_t>(n_text));
    if (piece == nullptr) return 1;  // OutOfMemoryError pending
    jboolean go_on = env->CallBooleanMethod(s->target, g_deliver, static_cast<jint>(token), piece);
    env->DeleteLocalRef(piece);
    return (env->ExceptionCheck() || !go_on) ? 1 : 0;
}

}  // namespace

extern "C" {

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM* vm, void*) {
    JNIEnv* env = nullptr;
    if (vm->GetEnv(reinterpret_cast<void**>(&env), JNI_VERSION_1_6) != JNI_OK) return JNI_ERR;
    jclass ex = env->FindClass("ai/edgekit/EdgekitException");
    if (ex == nullptr) return JNI_ERR;
    g_exception = static_cast<jclass>(env->NewGlobalRef(ex));
    env->DeleteLocalRef(ex);
    g_exception_init = env->GetMethodID(g_exception, "<init>", "(ILjava/lang/String;[B)V");
    jclass stream = env->FindClass("ai/edgekit/Edgekit$Stream");
    if (g_exception == nullptr || g_exception_init == nullptr || stream == nullptr) return JNI_ERR;
    g_deliver = env->GetMethodID(stream, "deliver", "(I[B)Z");
    env->DeleteLocalRef(stream);
    return g_deliver != nullptr ? JNI_VERSION_1_6 : JNI_ERR;
}

JNIEXPORT void JNICALL JNI_OnUnload(JavaVM* vm, void*) {
    JNIEnv* env = nullptr;
    if (vm->GetEnv(reinterpret_cast<void**>(&env), JNI_VERSION_1_6) == JNI_OK && g_exception != nullptr) {
        env->DeleteGlobalRef(g_exception);
    }
    g_exception = nullptr;
}

JNIEXPORT jlong JNICALL Java_ai_edgekit_Edgekit_nativeLoad(JNIEnv* env, jclass, jbyteArray path, jint threads) {
    std::string p = from_bytes(env, path);  // UTF-8 without NUL (Edgekit.utf8z); c_str() terminates it
    ek_load_params params = ek_load_params_default();
    params.n_threads = threads;
    ek_model* m = nullptr;
    ek_status st = ek_model_load(p.c_str(), &params, &m);
    if (st != EK_OK) {
        throw_status(env, st);
        return 0;
    }
    return static_cast<jlong>(reinterpret_cast<intptr_t>(m));
}

JNIEXPORT void JNICALL Java_ai_edgekit_Edgekit_nativeFree(JNIEnv*, jclass, jlong handle) {
    ek_model_free(model_of(handle));
}

JNIEXPORT jint JNICALL Java_ai_edgekit_Edgekit_nativeGenerate(JNIEnv* env, jclass, jlong handle, jbyteArray prompt,
                                                              jfloat temperature, jint top_k, jfloat top_p,
                                                              jlong seed, jint max_tokens, jboolean stop_at_eos,
                                                              jboolean add_special, jobjectArray stop,
                                                              jobject stream) {
    std::string text = from_bytes(env, prompt);
    std::vector<std::string> stops;
    const jsize n_stop = stop != nullptr ? env->GetArrayLength(stop) : 0;
    for (jsize i = 0; i < n_stop; i++) {
        auto* s = static_cast<jbyteArray>(env->GetObjectArrayElement(stop, i));
        stops.push_back(from_bytes(env, s));
        env->DeleteLocalRef(s);
    }
    std::vector<const char*> stop_ptrs;
    for (const std::string& s : stops) stop_ptrs.push_back(s.c_str());

    ek_sampling cfg = ek_sampling_default();
    cfg.temperature = temperature;
    cfg.top_k = top_k;
    cfg.top_p = top_p;
    cfg.seed = static_cast<uint64_t>(seed);
    cfg.max_tokens = max_tokens;
    cfg.stop_at_eos = stop_at_eos ? 1 : 0;
    cfg.add_special = add_special ? 1 : 0;
    cfg.stop = stop_ptrs.empty() ? nullptr : stop_ptrs.data();
    cfg.n_stop = static_cast<int32_t>(stop_ptrs.size());

    Stream s{env, stream};
    int32_t n = 0;
    ek_status st = ek_generate(model_of(handle), text.c_str(), &cfg, on_token, &s, &n);
    if (env->ExceptionCheck()) return n;  // the callback's exception (or an OutOfMemoryError) propagates as is
    if (st != EK_OK) throw_status(env, st);
    return n;
}

JNIEXPORT jintArray JNICALL Java_ai_edgekit_Edgekit_nativeTokenize(JNIEnv* env, jclass, jlong handle, jbyteArray text,
                                                                  jboolean add_special) {
    std::string t = from_bytes(env, text);  // a Java array holds < 2^31 bytes: the size fits int32_t
    int32_t n = 0;
    // ask for the count, then fill: the C API reports the size it needs
    ek_status st = ek_tokenize(model_of(handle), t.data(), static_cast<int32_t>(t.size()), add_special ? 1 : 0,
                               nullptr, 0, &n);
    std::vector<int32_t> ids;
    if (st == EK_ERR_BUFFER_TOO_SMALL) {
        ids.resize(static_cast<size_t>(n));
        st = ek_tokenize(model_of(handle), t.data(), static_cast<int32_t>(t.size()), add_special ? 1 : 0, ids.data(),
                         n, &n);
    }
    if (st != EK_OK) {
        throw_status(env, st);
        return nullptr;
    }
    jintArray out = env->NewIntArray(n);
    if (out != nullptr && n > 0) env->SetIntArrayRegion(out, 0, n, reinterpret_cast<const jint*>(ids.data()));
    return out;
}

JNIEXPORT jbyteArray JNICALL Java_ai_edgekit_Edgekit_nativeDetokenize(JNIEnv* env, jclass, jlong handle,
                                                                     jintArray tokens, jboolean skip_special) {
    const jsize n_tokens = env->GetArrayLength(tokens);
    std::vector<int32_t> ids(static_cast<size_t>(n_tokens));
    if (n_tokens > 0) env->GetIntArrayRegion(tokens, 0, n_tokens, reinterpret_cast<jint*>(ids.data()));
    std::vector<char> text(256);
    int32_t n = 0;
    ek_status st = ek_detokenize(model_of(handle), ids.data(), n_tokens, skip_special ? 1 : 0, text.data(),
                                 static_cast<int32_t>(text.size()), &n);
    if (st == EK_ERR_BUFFER_TOO_SMALL) {  // n is the length without the NUL
        text.resize(static_cast<size_t>(n) + 1);
        st = ek_detokenize(model_of(handle), ids.data(), n_tokens, skip_special ? 1 : 0, text.data(),
                           static_cast<int32_t>(text.size()), &n);
    }
    if (st != EK_OK) {
        throw_status(env, st);
        return nullptr;
    }
    return to_bytes(env, text.data(), static_cast<size_t>(n));
}

}  // extern "C"
