package ai.edgekit;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Objects;

/**
 * An edgekit model (a quantized {@code .ekq} artifact) for Java and Android apps: text in, text out, through the C
 * API ({@code edgekit.h}, {@code libedgekit.so}) and the JNI glue {@code libedgekit_jni.so}.
 *
 * <pre>{@code
 * try (Edgekit m = Edgekit.load("/data/local/tmp/model.ekq", 4)) {
 *     String text = m.generate("The capital of France is", new GenerateOptions().maxTokens(32),
 *                              (token, piece) -> { System.out.print(piece); return true; });
 * }
 * }</pre>
 *
 * <p>Strings cross JNI as UTF-8 bytes ({@code byte[]}), never as JNI's modified UTF-8, so characters outside the
 * Basic Multilingual Plane (emoji) arrive intact. Errors of the C API throw {@link EdgekitException} with its
 * message. A model is used by one thread at a time (the methods are synchronized); after {@link #close()} every
 * method throws {@link IllegalStateException}.
 */
public final class Edgekit implements AutoCloseable {
    static {
        System.loadLibrary("edgekit_jni");  // its DT_NEEDED libedgekit.so is found next to it (rpath / APK lib dir)
    }

    private long handle;      // the ek_model*, 0 once closed
    private boolean busy;     // inside generate: the callback may not close or re-enter the model

    private Edgekit(long handle) {
        this.handle = handle;
    }

    /**
     * Loads an artifact.
     *
     * @param artifactPath the {@code .ekq} file (memory-mapped, not copied)
     * @param threads kernel threads (process-wide, shared by every model); {@code <= 0}: all cores
     * @throws EdgekitException when the file cannot be read or is not an artifact this runtime runs
     */
    public static Edgekit load(String artifactPath, int threads) {
        return new Edgekit(nativeLoad(utf8z(artifactPath, "artifactPath"), threads));
    }

    /**
     * Generates a continuation of {@code prompt}: empties the cache, prefills the prompt, samples until
     * {@code opts.maxTokens}, EOS, a stop string, the callback's {@code false}, or a full cache.
     *
     * @param opts the sampling settings ({@code null}: the defaults of {@link GenerateOptions})
     * @param cb called once per new token ({@code null}: none); an exception it throws stops generation and is
     *     rethrown from here
     * @return the generated text (the concatenation of the callback's pieces)
     */
    public synchronized String generate(String prompt, GenerateOptions opts, TokenCallback cb) {
        long h = open();
        GenerateOptions o = opts != null ? opts : new GenerateOptions();
        byte[][] stops = new byte[o.stop.length][];
        for (int i = 0; i < stops.length; i++) {
            stops[i] = utf8z(o.stop[i], "stop string");
        }
        Stream stream = new Stream(cb);
        busy = true;
        try {
            nativeGenerate(h, utf8z(prompt, "prompt"), o.temperature, o.topK, o.topP, o.seed, o.maxTokens,
                           o.stopAtEos, o.addSpecial, stops, stream);
        } finally {
            busy = false;
        }
        return new String(stream.text.toByteArray(), StandardCharsets.UTF_8);
    }

    /** The text's token ids, without the post-processor's tokens; special tokens written in the text count. */
    public int[] tokenize(String text) {
        return tokenize(text, false);
    }

    /** The text's token ids; {@code addSpecial}: with the tokens the post-processor puts around a text. */
    public synchronized int[] tokenize(String text, boolean addSpecial) {
        return nativeTokenize(open(), text.getBytes(StandardCharsets.UTF_8), addSpecial);
    }

    /** The text of token ids, special tokens included (so that {@code detokenize(tokenize(s))} gives s back). */
    public String detokenize(int[] tokens) {
        return detokenize(tokens, false);
    }

    /** The text of token ids; {@code skipSpecial} leaves special tokens out. */
    public synchronized String detokenize(int[] tokens, boolean skipSpecial) {
        Objects.requireNonNull(tokens, "tokens");
        return new String(nativeDetokenize(open(), tokens, skipSpecial), StandardCharsets.UTF_8);
    }

    /** Frees the model; a second close does nothing. Not allowed from inside a {@link TokenCallback}. */
    @Override
    public synchronized void close() {
        if (busy) {
            throw new IllegalStateException("Edgekit.close() called from a TokenCallback of its own generate()");
        }
        if (handle != 0) {
            nativeFree(handle);
            handle = 0;
        }
    }

    private long open() {
        if (handle == 0) {
            throw new IllegalStateException("this Edgekit model is closed");
        }
        if (busy) {  // synchronized is re-entrant: a callback on this thread would otherwise reach the C API
            throw new IllegalStateException("Edgekit model used from a TokenCallback of its own generate()");
        }
        return handle;
    }

    /** UTF-8 bytes of s for a C string: U+0000 would end it early, so it is refused. */
    private static byte[] utf8z(String s, String what) {
        if (s == null) {
            throw new NullPointerException(what + " is null");
        }
        if (s.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(what + " contains U+0000, which a C string cannot hold");
        }
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** What the JNI glue calls per token: decodes the UTF-8 piece, keeps it, hands it to the user's callback. */
    private static final class Stream {
        final TokenCallback cb;
        final ByteArrayOutputStream text = new ByteArrayOutputStream();

        Stream(TokenCallback cb) {
            this.cb = cb;
        }

        boolean deliver(int token, byte[] utf8) {
            text.write(utf8, 0, utf8.length);
            return cb == null || cb.onToken(token, new String(utf8, StandardCharsets.UTF_8));
        }
    }

    private static native long nativeLoad(byte[] path, int threads);

    private static native void nativeFree(long handle);

    private static native int nativeGenerate(long handle, byte[] prompt, float temperature, int topK, float topP,
                                             long seed, int maxTokens, boolean stopAtEos, boolean addSpecial,
                                             byte[][] stop, Object stream);

    private static native int[] nativeTokenize(long handle, byte[] text, boolean addSpecial);

    private static native byte[] nativeDetokenize(long handle, int[] tokens, boolean skipSpecial);
}
