package ai.edgekit;

import java.nio.charset.StandardCharsets;

/**
 * An error reported by the edgekit C API: its message is the C API's own ({@code ek_last_error}), and
 * {@link #status()} / {@link #statusName()} say which {@code ek_status} it was (e.g. {@code EK_ERR_IO}).
 */
public class EdgekitException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int status;
    private final String statusName;

    /** Made by the JNI glue: the message arrives as UTF-8 bytes (JNI strings are modified UTF-8). */
    EdgekitException(int status, String statusName, byte[] utf8Message) {
        super(new String(utf8Message, StandardCharsets.UTF_8));
        this.status = status;
        this.statusName = statusName;
    }

    /** The numeric {@code ek_status} (1 = invalid argument, 2 = I/O, 3 = format, ...; see edgekit.h). */
    public int status() {
        return status;
    }

    /** The status's name, e.g. {@code "EK_ERR_FORMAT"}. */
    public String statusName() {
        return statusName;
    }
}
