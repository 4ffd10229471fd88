# Run 2 of the persistence check: nothing of run 1 may be visible.
import os
seen = [p for p in ["/box/work/persist_marker", "/tmp/persist_marker"] if os.path.exists(p)]
print("SEEN:" + ",".join(seen) + " WORK:" + ",".join(os.listdir("/box/work")))
