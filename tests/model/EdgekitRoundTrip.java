import ai.edgekit.EdgekitException;
import ai.edgekit.Edgekit;
import ai.edgekit.GenerateOptions;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;

/**
 * The Java side of tests/model/test_jni_smollm2.py: drives ai.edgekit.Edgekit and prints what it got, one record a
 * line, text as hex of its UTF-8 bytes (stdout's charset depends on the locale), so that Python compares it with
 * the C API and the Python runtime.
 *
 * <p>Usage: java EdgekitRoundTrip ARTIFACT INPUT N; INPUT has lines "P hex" (a prompt to generate N tokens from
 * greedily), "T hex" (a text to tokenize and detokenize) and "B hex" (a path that does not load).
 */
public final class EdgekitRoundTrip {
    static String hex(String s) {
        StringBuilder b = new StringBuilder();
        for (byte x : s.getBytes(StandardCharsets.UTF_8)) {
            b.append(String.format("%02x", x & 0xff));
        }
        return b.length() == 0 ? "-" : b.toString();
    }

    static String unhex(String h) {
        byte[] out = new byte[h.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Integer.parseInt(h.substring(2 * i, 2 * i + 2), 16);
        }
        return new String(out, StandardCharsets.UTF_8);
    }

    static String ids(List<Integer> xs) {
        StringBuilder b = new StringBuilder();
        for (int x : xs) {
            b.append(b.length() == 0 ? "" : ",").append(x);
        }
        return b.toString();
    }

    static String ids(int[] xs) {
        List<Integer> l = new ArrayList<>();
        for (int x : xs) {
            l.add(x);
        }
        return ids(l);
    }

    /** Prints "name ok" when body throws an exception of type want, else "name FAIL ...". */
    static void expect(String name, Class<? extends Throwable> want, Runnable body) {
        try {
            body.run();
            System.out.println(name + " FAIL no exception");
        } catch (Throwable t) {
            System.out.println(name + (want.isInstance(t) ? " ok" : " FAIL " + t));
        }
    }

    public static void main(String[] args) throws Exception {
        String artifact = args[0];
        int n = Integer.parseInt(args[2]);
        List<String> lines = Files.readAllLines(Paths.get(args[1]), StandardCharsets.US_ASCII);
        GenerateOptions greedy = new GenerateOptions().maxTokens(n);
        Edgekit m = Edgekit.load(artifact, 2);
        String firstPrompt = null;
        int k = 0;
        for (String line : lines) {
            String kind = line.substring(0, 1);
            String arg = unhex(line.substring(2));
            if (kind.equals("P")) {
                firstPrompt = firstPrompt == null ? arg : firstPrompt;
                List<Integer> got = new ArrayList<>();
                StringBuilder pieces = new StringBuilder();
                String text = m.generate(arg, greedy, (token, piece) -> {
                    got.add(token);
                    pieces.append(piece);
                    return true;
                });
                System.out.println("gen " + k + " " + ids(got) + " " + hex(text) + " " + hex(pieces.toString()));
            } else if (kind.equals("T")) {
                int[] t = m.tokenize(arg);
                System.out.println("tok " + k + " " + (t.length == 0 ? "-" : ids(t)) + " " + hex(m.detokenize(t))
                                   + " " + hex(m.detokenize(t, true)));
            } else if (kind.equals("B")) {
                try {
                    Edgekit.load(arg, 1).close();
                    System.out.println("bad " + k + " FAIL loaded");
                } catch (EdgekitException e) {
                    System.out.println("bad " + k + " " + e.status() + " " + e.statusName() + " " + hex(e.getMessage()));
                }
            }
            k++;
        }
        final String first = firstPrompt;
        // the callback's false stops after that token
        List<Integer> stopped = new ArrayList<>();
        String text = m.generate(firstPrompt, greedy, (token, piece) -> stopped.add(token) && stopped.size() < 4);
        System.out.println("stop " + ids(stopped) + " " + hex(text));
        // an exception from the callback stops generation and comes out of generate unchanged
        RuntimeException boom = new RuntimeException("boom");
        List<Integer> seen = new ArrayList<>();
        try {
            m.generate(firstPrompt, greedy, (token, piece) -> {
                seen.add(token);
                if (seen.size() == 3) {
                    throw boom;
                }
                return true;
            });
            System.out.println("throw FAIL returned");
        } catch (RuntimeException e) {
            System.out.println("throw " + (e == boom ? "same" : "other:" + e) + " " + ids(seen));
        }
        // the model stays usable; a callback may not close it or re-enter it
        List<Integer> again = new ArrayList<>();
        m.generate(firstPrompt, greedy, (token, piece) -> again.add(token));
        System.out.println("again " + ids(again));
        expect("reenter-close", IllegalStateException.class, () -> m.generate(first, greedy, (t, p) -> {
            m.close();
            return true;
        }));
        expect("reenter-tokenize", IllegalStateException.class,
               () -> m.generate(first, greedy, (t, p) -> m.tokenize("x").length > 0));
        expect("nul-prompt", IllegalArgumentException.class, () -> m.generate("a\0b", greedy, null));
        expect("bad-id", EdgekitException.class, () -> m.detokenize(new int[] {-1}));
        expect("bad-settings", EdgekitException.class, () -> m.generate("x", new GenerateOptions().maxTokens(0), null));
        System.out.println("nocb " + hex(m.generate(firstPrompt, null, null)));
        m.close();
        m.close();  // a second close does nothing
        expect("closed-generate", IllegalStateException.class, () -> m.generate("x", null, null));
        expect("closed-tokenize", IllegalStateException.class, () -> m.tokenize("x"));
        expect("closed-detokenize", IllegalStateException.class, () -> m.detokenize(new int[] {1}));
        System.out.println("done");
    }
}
