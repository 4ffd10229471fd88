# TCP connect to the host's loopback (the sandbox has its own net namespace; socket() of
# AF_INET is also denied by seccomp).
import socket
s = socket.create_connection(("127.0.0.1", 22), timeout=1)
print("CONNECTED")
