# Creates empty files without end, in the working directory and in /tmp: the scratch's
# inode cap must stop it long before the time limit. Prints how many and why it stopped.
import errno, os, sys
n = 0
try:
    for d in (".", "/tmp"):
        for i in range(1000000):
            open(os.path.join(d, "f%d" % i), "w").close()
            n += 1
except OSError as e:
    print("stopped", n, errno.errorcode.get(e.errno, e.errno))
    sys.exit(0)
print("created", n)
