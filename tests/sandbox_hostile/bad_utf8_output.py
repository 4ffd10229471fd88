# Prints bytes that are not UTF-8, of every kind, on stdout and stderr: a stray
# continuation byte, bytes never valid (C0, C1, F5-FF), overlong forms, UTF-16
# surrogates, code points above U+10FFFF, sequences cut short (also at the very end),
# NUL, and terminal escape sequences. The result must still serialise (JSON, proto).
import sys
bad = (b"ok \x80 \xbf \xc0\xaf \xc1\xbf \xe0\x80\xaf \xf0\x80\x80\xaf \xed\xa0\x80 \xed\xbf\xbf "
       b"\xf4\x90\x80\x80 \xf5\x80 \xff\xfe \xe2\x82 \xf0\x9f\x98 \x00 \x1b[2J\x1b]0;title\x07 \xef\xbf\xbd")
sys.stdout.buffer.write(bad + b"\n" + bad[:5] + b"\xe2")
sys.stderr.buffer.write(b"err " + bad + b"\xf0\x9f")
