# unshare(CLONE_NEWUSER) to regain capabilities in a fresh user namespace: denied.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.unshare(0x10000000)  # CLONE_NEWUSER
print("UNSHARED" if r == 0 else "FAILED")
