# Fork bomb: every process forks forever. Contained by the pids cgroup; killed at the deadline.
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
