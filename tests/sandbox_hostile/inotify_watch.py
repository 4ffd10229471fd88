# Watches the shared interpreter binary: another run's exec of it would show up here.
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(0)
if fd < 0:
    print("refused", os.strerror(ctypes.get_errno()))
    sys.exit(0)
wd = libc.inotify_add_watch(fd, sys.executable.encode(), 0x20 | 0x1)  # IN_OPEN | IN_ACCESS
print("watching", wd)
sys.exit(1)
