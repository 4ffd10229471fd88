# The sandbox's Python zygote (see core/sandbox/zygote.h). One runs per sandbox worker,
# started by the host inside bubblewrap as the unprivileged sandbox uid, in the worker's
# cgroup, and imports the interpreter once. For every program it forks:
#
#   runner  a child that unshares new user, mount, pid, IPC and UTS namespaces, maps its
#           own uid, forks `init` and reports what became of the program;
#   init    pid 1 of the new pid namespace: mounts the run's scratch (one tmpfs, capped in
#           bytes and files, at /box/work and /tmp), the program read-only at /box/prog and a
#           /proc of its own pid namespace (an empty one where the kernel refuses), forks the
#           program, reaps orphans and exits with the program's status, which kills every
#           process left in the namespace;
#   program pid 2: stdin/stdout/stderr from the host's pipes, every other fd closed, rlimits,
#           then the source compiled and executed as __main__. Init has dropped every
#           capability, set no_new_privs and the host's seccomp filter before forking it
#           (and ignores the program's signals and is not dumpable).
#
# So each program is a fresh process in fresh namespaces with fresh scratch, limits and
# filter, as with one bwrap per run; what it may change of the interpreter (modules,
# builtins, the environment) dies with its forked copy. The zygote itself never runs
# untrusted code and is not dumpable (programs cannot read or write its memory).
#
# Protocol on fd 3 (a unix stream socket to the host), all messages little-endian:
#   zygote -> host  at start: b"R" once ready, or b"E" + u32 length + text and exit.
#   host -> zygote  u32 length + JSON request, with SCM_RIGHTS [stdin, stdout, stderr]
#                   attached to the length; then the source: u32 length + bytes.
#   zygote -> host  b"A" once it has the whole request (a host that sees the socket end
#                   before it knows no program ran), then
#                   u32 length + JSON {"exit": code} or {"signal": n}, plus
#                   "compile_error": true when the source did not compile, "no_proc": true
#                   when the program had no /proc, "error": text when the run could not be
#                   set up (then no program ran).
# fd 4 holds the seccomp filter (struct sock_filter[]), read once at start.
import ctypes
import json
import os
import signal
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND = 32, 4096
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP = 1, 4, 24
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4


def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))


def mount(source, target, fstype, flags, data):
    check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                     ctypes.c_ulong(flags), data and data.encode()), "mount " + target)


def write_file(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capabilities():
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    header = CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (CapData * 2)()
    check(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return out


def send_message(sock, obj):
    body = json.dumps(obj).encode()
    sock.sendall(struct.pack("<I", len(body)) + body)


def set_limits(limits):
    import resource
    pairs = [(resource.RLIMIT_CPU, limits["cpu_s"], limits["cpu_s"] + 1),
             (resource.RLIMIT_FSIZE, limits["fsize"], limits["fsize"]),
             (resource.RLIMIT_NOFILE, limits["nofile"], limits["nofile"]),
             (resource.RLIMIT_CORE, 0, 0), (resource.RLIMIT_MEMLOCK, 0, 0),
             (resource.RLIMIT_MSGQUEUE, 0, 0),
             (resource.RLIMIT_NPROC, limits["nproc"], limits["nproc"])]
    if limits.get("as", 0) > 0:
        pairs.append((resource.RLIMIT_AS, limits["as"], limits["as"]))
    for res, soft, hard in pairs:
        resource.setrlimit(res, (soft, hard))


def run_program(source, limits, bpf, status_fd):
    """The program's process (pid 2 of the run): never returns."""
    code = 1
    try:
        for fd in (0, 1, 2, status_fd):
            os.set_inheritable(fd, fd in (0, 1, 2))
        os.closerange(3, status_fd)
        os.closerange(status_fd + 1, 1 << 16)
        os.chdir("/box/work")
        set_limits(limits)
        # Capabilities, no_new_privs and the seccomp filter come from init; the program's
        # own /proc/self is its own again, and its signals are Python's defaults.
        check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                    signal.SIGALRM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_DFL)
    except BaseException as e:  # set-up failed: no program runs
        os.write(status_fd, ("E" + str(e)).encode("utf-8", "replace"))
        os._exit(126)
    import types
    main = types.ModuleType("__main__")
    main.__file__ = "/box/prog/main.py"
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.argv = ["/box/prog/main.py"]
    # As deep a stack for the program as a fresh interpreter gives.
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth += 1
        frame = frame.f_back
    sys.setrecursionlimit(sys.getrecursionlimit() + depth + 1)
    try:
        compiled = compile(source, "/box/prog/main.py", "exec", dont_inherit=True)
    except BaseException as e:
        # What `python3 main.py` prints for a program it cannot compile. A SyntaxError
        # (IndentationError, TabError) or null bytes make a compile error, which the host
        # learns here, before any of the program's code runs, so no program can forge it;
        # anything else (a nesting too deep to compile) fails as a run would.
        if isinstance(e, (SyntaxError, ValueError)):
            os.write(status_fd, b"C")
        os.close(status_fd)
        try:
            sys.excepthook(type(e), e.with_traceback(None), None)
        except BaseException:
            pass
        os._exit(1)
    os.close(status_fd)
    del source, bpf, limits
    try:
        exec(compiled, main.__dict__)
        code = 0
    except SystemExit as e:
        code = exit_code(e)
    except BaseException as e:
        # The traceback starts at the program's own frame, as in a fresh interpreter.
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        try:
            sys.excepthook(type(e), e.with_traceback(tb), tb)
        except BaseException:
            pass
        code = 1
    os._exit(finish(code))


def exit_code(e):
    c = e.code
    if c is None:
        return 0
    if isinstance(c, int):
        return c & 0xFF
    try:
        print(c, file=sys.stderr)
    except BaseException:
        pass
    return 1


def finish(code):
    """What the interpreter does at exit: join threads, run atexit, flush."""
    try:
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()
    except SystemExit as e:
        code = exit_code(e)
    except BaseException:
        pass
    try:
        import atexit
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            if stream is sys.stdout:
                code = 120
    return code


def init_process(source, limits, bpf, fds, status_w):
    """pid 1 of the run's pid namespace: never returns."""
    try:
        mb = max(int(limits["scratch_mb"]), 1)
        # The root, work/, tmp/, prog/ and prog/main.py are inodes too.
        inodes = max(int(limits["scratch_inodes"]), 0) + 5
        mount("grpo-run", "/box/s", "tmpfs", MS_NOSUID | MS_NODEV,
              "size=%dm,nr_inodes=%d,mode=0755" % (mb, inodes))
        for d in ("work", "tmp", "prog"):
            os.mkdir("/box/s/" + d, 0o700 if d != "prog" else 0o755)
        with open("/box/s/prog/main.py", "wb") as f:
            f.write(source)
        mount("/box/s/work", "/box/work", None, MS_BIND, None)
        mount("/box/s/tmp", "/tmp", None, MS_BIND, None)
        mount("/box/s/prog", "/box/prog", None, MS_BIND, None)
        mount(None, "/box/prog", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, None)
        no_proc = False
        try:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        except OSError:
            # A proc mount the kernel refuses (the outer one is partly covered): an empty
            # /proc rather than the zygote's, whose processes are not the program's to see.
            mount("grpo-noproc", "/proc", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k")
            no_proc = True
        os.write(status_w, b"P" if no_proc else b"p")
        # The mount points' parent stays out of reach of the program.
        mount("grpo-hide", "/box/s", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "size=4k")
        # From here init needs nothing but fork and wait: it gives up what the program
        # must not reach through it. Signals from the program are ignored; no
        # capabilities; the program's seccomp filter (inherited by the program); not
        # dumpable, so its memory is not the program's to read or write through /proc.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                    signal.SIGUSR2, signal.SIGALRM, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_IGN)
        drop_capabilities()
        check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        buf = ctypes.create_string_buffer(bpf, len(bpf))
        prog = SockFprog(len(bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
        check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")
        check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "not dumpable")
    except BaseException as e:
        os.write(status_w, ("E" + str(e)).encode("utf-8", "replace"))
        os._exit(126)
    pid = os.fork()
    if pid == 0:  # never back into init's code, whatever happens
        try:
            for i, fd in enumerate(fds):
                os.dup2(fd, i)
            run_program(source, limits, bpf, status_w)
        finally:
            os._exit(126)
    for fd in fds:
        os.close(fd)
    os.close(status_w)
    status = 126 << 8
    while True:  # reap orphans until the program itself is done
        try:
            p, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if p == pid:
            status = st
            break
    # Exiting as pid 1 kills every other process of the run.
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 126)


def runner(request, source, bpf, fds, status_w):
    """Between the zygote and the run: new namespaces; exits with init's status."""
    try:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The zygote is not dumpable; the run's processes are (their /proc/self files
        # must be theirs, and the uid map writable).
        check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
        # Under memory pressure the kernel kills the run, not the zygote.
        write_file("/proc/self/oom_score_adj", "1000")
        uid, gid = os.getuid(), os.getgid()
        check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
        write_file("/proc/self/setgroups", "deny")
        write_file("/proc/self/uid_map", "%d %d 1" % (uid, uid))
        write_file("/proc/self/gid_map", "%d %d 1" % (gid, gid))
        check(libc.sethostname(b"sandbox", 7), "sethostname")
    except BaseException as e:
        os.write(status_w, ("E" + str(e)).encode("utf-8", "replace"))
        os._exit(126)
    pid = os.fork()
    if pid == 0:  # never back into the runner's code
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            init_process(source, request["limits"], bpf, fds, status_w)
        finally:
            os._exit(126)
    for fd in fds:
        os.close(fd)
    os.close(status_w)
    _, status = os.waitpid(pid, 0)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))


def serve(sock, bpf):
    while True:
        try:
            header, fds, _, _ = socket.recv_fds(sock, 4, 3)
        except OSError:
            return
        if not header:
            return
        if len(header) < 4:
            header += read_exact(sock, 4 - len(header))
        request = json.loads(read_exact(sock, struct.unpack("<I", header)[0]))
        source = read_exact(sock, struct.unpack("<I", read_exact(sock, 4))[0])
        sock.sendall(b"A")  # taken: from here on the host waits for the reply
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            send_message(sock, {"error": "expected 3 fds, got %d" % len(fds)})
            continue
        status_r, status_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # never back into the zygote's loop
            try:
                sock.close()
                os.close(status_r)
                runner(request, source, bpf, fds, status_w)
            finally:
                os._exit(126)
        for fd in fds:
            os.close(fd)
        os.close(status_w)
        notes = b""
        while True:
            chunk = os.read(status_r, 4096)
            if not chunk:
                break
            notes += chunk
        os.close(status_r)
        _, status = os.waitpid(pid, 0)
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        # notes: "p" or "P" from init (with or without /proc), then "C" from the program
        # when the source did not compile; "E" + text from whichever could not set up.
        reply = {}
        if notes[:1] in (b"p", b"P"):
            reply["no_proc"] = notes[:1] == b"P"
            notes = notes[1:]
        if notes[:1] == b"E":
            reply["error"] = notes[1:].decode("utf-8", "replace")
        elif code > 128:
            reply["signal"] = code - 128
        else:
            reply["exit"] = code
            reply["compile_error"] = notes == b"C"
        send_message(sock, reply)


def main():
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    sock = socket.socket(fileno=3)
    try:
        bpf = b""
        while True:
            chunk = os.read(4, 65536)
            if not chunk:
                break
            bpf += chunk
        os.close(4)
        if not bpf or len(bpf) % 8:
            raise ValueError("no seccomp filter on fd 4")
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
    except BaseException as e:
        text = str(e).encode("utf-8", "replace")
        sock.sendall(b"E" + struct.pack("<I", len(text)) + text)
        os._exit(1)
    sock.sendall(b"R")
    serve(sock, bpf)
    os._exit(0)


main()
