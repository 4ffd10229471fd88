# Writes to /proc/sys must fail (read-only proc sysctl for an unprivileged uid).
import os
failures = 0
for path in ["/proc/sys/kernel/hostname", "/proc/sys/kernel/core_pattern", "/proc/sys/vm/overcommit_memory"]:
    try:
        fd = os.open(path, os.O_WRONLY)
        os.close(fd)
    except OSError:
        failures += 1
print("FAILED:%d UID:%d" % (failures, os.getuid()))
