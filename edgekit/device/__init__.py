"""The on-device half of edgekit: device bundles (:mod:`.bundle`, golden logits in :mod:`.golden`), running them
on a device (:mod:`.run`: local, ssh, adb) and the table of their results (:mod:`.report`)."""
