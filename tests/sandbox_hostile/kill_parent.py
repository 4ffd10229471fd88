# Kills its parent and pid 1 with SIGKILL, then everything it can (kill -1).
import os, signal
for pid in (os.getppid(), 1, -1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
print("ALIVE")
