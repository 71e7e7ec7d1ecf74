"""The native side of edgekit seen from Python: what the compiled module and the CPU offer (:mod:`.info`), and
where the C API library and header live, with a ctypes binding of it (:mod:`.capi`)."""
