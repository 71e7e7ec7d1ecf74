package ai.edgekit;

/**
 * Receives each new token of {@link Edgekit#generate}: its id and the text it completes.
 *
 * <p>The text is empty while a character or a possible stop string is still open; the concatenation of every
 * call's text is the generated text. Return {@code false} to stop after this token. An exception thrown here stops
 * generation too, and {@code generate} rethrows it unchanged.
 */
@FunctionalInterface
public interface TokenCallback {
    /**
     * Called once per generated token, on the thread that called {@code generate}.
     *
     * @param token the token id
     * @param text the text this token completes (possibly empty)
     * @return true to go on, false to stop after this token
     */
    boolean onToken(int token, String text);
}
