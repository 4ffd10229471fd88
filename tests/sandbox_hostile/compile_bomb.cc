// Does not compile: a compile_error, with g++'s message in stderr.
int main() { return undefined_name; }
