package ai.edgekit;

import java.util.Arrays;

/**
 * Settings of {@link Edgekit#generate}, the fields of the C API's {@code ek_sampling}. The defaults are
 * {@code ek_sampling_default()}'s: greedy, 64 new tokens at most, stop at the end-of-sequence token, no stop
 * strings, the prompt tokenized without the post-processor's tokens, seed 0. Setters return {@code this}:
 * {@code new GenerateOptions().maxTokens(32).temperature(0.7f).topP(0.9f).seed(1)}.
 */
public final class GenerateOptions {
    float temperature = 0f;
    int topK = 0;
    float topP = 1f;
    long seed = 0;
    int maxTokens = 64;
    boolean stopAtEos = true;
    boolean addSpecial = false;
    String[] stop = new String[0];

    /** {@code <= 0}: greedy (the first largest logit); else sample softmax(logits / temperature). */
    public GenerateOptions temperature(float t) {
        temperature = t;
        return this;
    }

    /** {@code > 0}: sample among the k most likely tokens only (0: no limit). */
    public GenerateOptions topK(int k) {
        topK = k;
        return this;
    }

    /** Nucleus sampling: the most likely tokens whose mass reaches p, in (0, 1]. */
    public GenerateOptions topP(float p) {
        topP = p;
        return this;
    }

    /** The same seed, settings and model give the same tokens on every platform. */
    public GenerateOptions seed(long s) {
        seed = s;
        return this;
    }

    /** New tokens at most ({@code > 0}). */
    public GenerateOptions maxTokens(int n) {
        maxTokens = n;
        return this;
    }

    /** Whether the tokenizer's end-of-sequence token ends generation. */
    public GenerateOptions stopAtEos(boolean b) {
        stopAtEos = b;
        return this;
    }

    /** Whether the prompt is tokenized with the tokens the post-processor adds (e.g. a BOS). */
    public GenerateOptions addSpecial(boolean b) {
        addSpecial = b;
        return this;
    }

    /** Stop strings (non-empty): generation ends before the first one that appears; it is not reported. */
    public GenerateOptions stop(String... strings) {
        stop = Arrays.copyOf(strings, strings.length);
        return this;
    }
}
