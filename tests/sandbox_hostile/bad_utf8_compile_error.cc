// A C++ program whose compiler errors quote bytes that are not UTF-8 (a surrogate, an
// overlong slash, 0xFF): the compile_error result must still serialise.
int main() { return í € À¯ ÿ ; }
