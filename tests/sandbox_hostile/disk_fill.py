# Writes 4 MiB chunks into file after file (each under the file-size limit) until the
# scratch is full. Prints the MiB written and why it stopped.
import errno, os, sys
chunk = b"x" * (4 << 20)
mib = 0
try:
    for i in range(100000):
        with open("/tmp/big%d" % i if i % 2 else "big%d" % i, "wb") as f:
            for _ in range(3):
                f.write(chunk)
                f.flush()
                mib += 4
except OSError as e:
    print("stopped", mib, errno.errorcode.get(e.errno, e.errno))
    sys.exit(0)
print("wrote", mib)
