# Double-forks a daemon that detaches (setsid) and would run forever; the parent exits 0
# at once. The run must still leave no process behind.
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 3)
        while True:
            with open("/box/work/marker", "w") as f:
                f.write(str(time.time()))
            time.sleep(0.01)
    os._exit(0)
os.wait()
print("PARENT DONE")
