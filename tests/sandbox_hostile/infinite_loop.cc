// Burns CPU forever: RLIMIT_CPU / the wall deadline end it.
int main() {
  volatile unsigned long x = 0;
  for (;;) ++x;
}
