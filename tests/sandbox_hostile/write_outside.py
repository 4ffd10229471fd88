# Tries to write outside the scratch dir; prints what succeeded. Expected: nothing.
import os
ok = []
for path in ["/tmp/../etc/grpo_pwned", "/usr/grpo_pwned", "/grpo_pwned", "/root/grpo_pwned",
             "/box/prog/grpo_pwned", os.path.expanduser("~") + "/../grpo_pwned", "/proc/sys/kernel/hostname",
             "/proc/sys/vm/drop_caches", "/sys/fs/cgroup/grpo_pwned", "/dev/grpo_pwned"]:
    try:
        with open(path, "w") as f:
            f.write("1\n")
        ok.append(path)
    except OSError:
        pass
# /tmp is a private tmpfs: writable, but not the host's /tmp.
with open("/tmp/grpo_sandbox_private_tmp", "w") as f:
    f.write("private")
print("WROTE:" + ",".join(ok))
