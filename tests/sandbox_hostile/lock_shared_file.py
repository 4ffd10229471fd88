# Tries to lock the files every run shares read-only (the interpreter, a system library):
# a lock one run holds, or a test for another run's lock, is a channel between runs.
# Prints "refused N" when every attempt failed, else what succeeded (exit 1).
import fcntl, os, struct, sys
got, refused = [], 0
for path in (sys.executable, "/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/bin/env", "."):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        continue
    attempts = (
        ("flock", lambda: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)),
        ("lockf", lambda: fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)),
        ("F_GETLK", lambda: fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0))),
        ("F_OFD_SETLK", lambda: fcntl.fcntl(fd, 37, struct.pack("hhqqi", fcntl.F_RDLCK, 0, 0, 0, 0))),
        ("F_SETLEASE", lambda: fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)),
    )
    for name, attempt in attempts:
        try:
            attempt()
            got.append(name + " " + path)
        except OSError:
            refused += 1
    os.close(fd)
if got:
    print("locked:", got)
    sys.exit(1)
print("refused", refused)
