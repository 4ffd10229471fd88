// grpo-math-worker: the symbolic stage of the math checker, in its own process.
//
// Reads requests from stdin and writes replies to stdout, one line each (protocol in
// worker_pool.h). Expressions arrive in the plain syntax that math_checker.cc prints
// (numbers are exact rationals, sqrt(), Pi, symbols made of letters, digits and '_').
// Equality is decided by GiNaC: expand(normal(a - b)) == 0; when that is not zero the
// difference is evaluated at three random points (radicals GiNaC leaves unsimplified,
// like sqrt(2)/2 - 1/sqrt(2), are zero there). The caller kills this process if it runs
// past the check's budget; it limits its own memory (--memory BYTES, RLIMIT_AS) so a
// blow-up ends in std::bad_alloc (an error reply) or a crash, never in swapping.
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cmath>
#include <complex>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <string>

#include <ginac/ginac.h>

namespace {

using GiNaC::ex;

// One parser per request, so that "x" on both sides is the same symbol.
GiNaC::parser MakeParser() {
  GiNaC::symtab table;
  table["Pi"] = GiNaC::Pi;
  return GiNaC::parser(table);  // unknown names become new symbols
}

// Collects the symbols of `e`.
void Symbols(const ex& e, GiNaC::exset& out) {
  if (GiNaC::is_a<GiNaC::symbol>(e)) {
    out.insert(e);
    return;
  }
  for (size_t i = 0; i < e.nops(); ++i) Symbols(e.op(i), out);
}

// A complex floating value of `e` at a random point, or NaN on failure.
bool EvalAt(const ex& e, const GiNaC::exmap& point, std::complex<double>& out) {
  ex v = GiNaC::evalf(e.subs(point));
  if (!GiNaC::is_a<GiNaC::numeric>(v)) return false;
  const auto& n = GiNaC::ex_to<GiNaC::numeric>(v);
  out = {GiNaC::real(n).to_double(), GiNaC::imag(n).to_double()};
  return std::isfinite(out.real()) && std::isfinite(out.imag());
}

// Is `e` zero? Exact first, then at random points.
bool IsZero(const ex& e) {
  ex d = GiNaC::expand(GiNaC::normal(e));
  if (d.is_zero()) return true;
  GiNaC::exset syms;
  Symbols(d, syms);
  std::mt19937 rng(12345);
  // Points of both signs, so that sqrt(x^2) is not x.
  std::uniform_int_distribution<int> num(7, 97);
  for (int trial = 0; trial < 3; ++trial) {
    GiNaC::exmap point;
    for (const ex& s : syms) {
      int sign = trial == 0 ? 1 : trial == 1 ? -1 : (num(rng) % 2 == 0 ? 1 : -1);
      point[s] = GiNaC::numeric(sign * num(rng), num(rng) + 3);
    }
    std::complex<double> v;
    if (!EvalAt(d, point, v)) return false;
    // The scale of the terms, so that a cancellation of large terms still counts.
    double scale = 1;
    if (GiNaC::is_a<GiNaC::add>(d)) {
      for (size_t i = 0; i < d.nops(); ++i) {
        std::complex<double> t;
        if (EvalAt(d.op(i), point, t)) scale = std::max(scale, std::abs(t));
      }
    }
    if (std::abs(v) > 1e-12 * scale) return false;
  }
  return true;
}

// Is a/b a constant (positive when `positive`) and non-zero?
bool ConstantRatio(const ex& a, const ex& b, bool positive) {
  if (IsZero(a) || IsZero(b)) return false;
  ex r = GiNaC::normal(a / b);
  GiNaC::exset syms;
  Symbols(r, syms);
  if (!syms.empty()) {
    // normal() may leave radicals; the ratio must not depend on the symbols.
    GiNaC::exmap p1, p2;
    int k = 0;
    for (const ex& s : syms) {
      p1[s] = GiNaC::numeric(11 + 2 * k, 7);
      p2[s] = GiNaC::numeric(5 + 3 * k, 13);
      ++k;
    }
    std::complex<double> v1, v2;
    if (!EvalAt(r, p1, v1) || !EvalAt(r, p2, v2)) return false;
    if (std::abs(v1 - v2) > 1e-9 * std::max(1.0, std::abs(v1))) return false;
    r = r.subs(p1);
  }
  std::complex<double> v;
  if (!EvalAt(r, {}, v)) return false;
  if (std::abs(v.imag()) > 1e-12 * std::max(1.0, std::abs(v))) return false;
  return !positive || v.real() > 0;
}

std::string Handle(const std::string& line) {
  size_t t1 = line.find('\t');
  size_t t2 = t1 == std::string::npos ? t1 : line.find('\t', t1 + 1);
  std::string op = line.substr(0, t1);
  if (op == "TEST_CRASH") std::abort();
  if (op == "TEST_HANG") {
    for (volatile unsigned long i = 0;; ++i) {
    }
  }
  if (op == "TEST_ALLOC") {  // allocates past the memory limit
    std::string s;
    for (;;) s.append(1 << 20, 'x');
  }
  if (t2 == std::string::npos) return "E\tbad request";
  GiNaC::parser reader = MakeParser();
  ex a = reader(line.substr(t1 + 1, t2 - t1 - 1));
  ex b = reader(line.substr(t2 + 1));
  bool ok = false;
  if (op == "EQ") {
    ok = IsZero(a - b);
  } else if (op == "REL") {
    ok = ConstantRatio(a, b, /*positive=*/true);
  } else if (op == "EQN") {
    ok = ConstantRatio(a, b, /*positive=*/false);
  } else {
    return "E\tunknown op " + op;
  }
  return ok ? "1" : "0";
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--memory") == 0) {
      rlim_t bytes = std::strtoull(argv[i + 1], nullptr, 10);
      rlimit lim{bytes, bytes};
      setrlimit(RLIMIT_AS, &lim);
    }
  }
  // A worker stuck in a computation when its parent dies would run on as an orphan:
  // a watchdog ends it once the parent is gone (we are then re-parented).
  pid_t parent = getppid();
  std::thread([parent] {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      if (getppid() != parent) _exit(0);
    }
  }).detach();
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    std::string reply;
    try {
      reply = Handle(line);
    } catch (const std::bad_alloc&) {
      reply = "E\tout of memory";
    } catch (const std::exception& e) {
      reply = std::string("E\t") + e.what();
    } catch (...) {
      reply = "E\tunknown error";
    }
    for (char& c : reply) {
      if (c == '\n') c = ' ';
    }
    std::cout << reply << '\n' << std::flush;
  }
  return 0;
}
