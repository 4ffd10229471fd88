# Run 1 of the persistence check: leaves files wherever it can.
import os
for path in ["/box/work/persist_marker", "/tmp/persist_marker"]:
    with open(path, "w") as f:
        f.write("from run 1")
print("WRITTEN")
