# Memory bomb: touches memory until the cgroup limit ends it.
chunks = []
while True:
    chunks.append(bytearray(16 << 20))
