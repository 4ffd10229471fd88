# Tries to read host secrets and other processes' environments. Expected: nothing of the
# host. /proc is the sandbox's own (pid namespace): only bwrap's init and this program,
# whose environments are the sandbox's clean one.
import os
found = []
for path in ["/etc/shadow", "/etc/passwd", "/root", "/home", "/work", "/proc/1/root/etc/shadow",
             "/proc/1/root/root", "/sys/fs/cgroup", "/var/run"]:
    try:
        if os.path.isdir(path):
            if os.listdir(path):
                found.append(path)
        else:
            with open(path, "rb") as f:
                if f.read(1):
                    found.append(path)
    except OSError:
        pass
pids = [p for p in os.listdir("/proc") if p.isdigit()]
environs = []
for p in pids:
    try:
        with open("/proc/%s/environ" % p, "rb") as f:
            environs.append(f.read().replace(b"\0", b" ").decode())
    except OSError:
        pass
print("FOUND:" + ",".join(found))
print("PIDS:%d" % len(pids))
print("ENVIRON:" + " | ".join(environs))
