// The code sandbox against ordinary and hostile programs (tests/sandbox_hostile/). Each
// hostile case asserts the status the run gets and that the host is unaffected: no process
// of the run survives it (checked through /proc: no process of the sandbox uid sits in a
// cgroup of this test process's runs), nothing was written outside the scratch dir, this
// process is alive. Needs root (or delegated cgroups); fails with the reason where Create fails.
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "core/common/utf8.h"
#include "core/sandbox/cgroup.h"
#include "core/sandbox/sandbox.h"
#include "core/sandbox/sandbox_pool.h"

namespace grpo::sandbox {
namespace {

std::string SourceDir() {
  const char* d = std::getenv("GRPO_SOURCE_DIR");
  return d ? d : GRPO_DEFAULT_SOURCE_DIR;
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Program Hostile(const std::string& name) {
  Program p;
  p.language = name.size() > 3 && name.substr(name.size() - 3) == ".py" ? Language::kPython : Language::kCpp;
  p.source = ReadFileOrDie(SourceDir() + "/tests/sandbox_hostile/" + name);
  return p;
}

Program Py(const std::string& source) { return {Language::kPython, source}; }

// The processes a Python zygote's group holds between runs: bwrap, bwrap's pid-1 init and
// the zygote itself (core/sandbox/zygote.h).
constexpr int kZygoteProcesses = 3;

bool IsZygoteGroup(const std::string& name) { return name.find("-z") != std::string::npos; }

// Processes of the sandbox uid that live in a cgroup of one of this process's runs, less
// the zygotes' own between runs (with zygotes too, when `with_zygotes`).
int SurvivingRunProcesses(bool with_zygotes = false) {
  std::map<std::string, int> per_group;
  const std::string marker = "grpo-sandbox/" + std::to_string(getpid()) + "-";
  DIR* d = opendir("/proc");
  if (!d) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::string base = std::string("/proc/") + e->d_name;
    struct stat st;
    if (stat(base.c_str(), &st) != 0 || st.st_uid != 65534) continue;
    std::ifstream cg(base + "/cgroup");
    std::string text((std::istreambuf_iterator<char>(cg)), std::istreambuf_iterator<char>());
    const size_t at = text.find(marker);
    if (at == std::string::npos) continue;
    const size_t end = text.find('\n', at);
    ++per_group[text.substr(at, end == std::string::npos ? std::string::npos : end - at)];
  }
  closedir(d);
  int count = 0;
  for (const auto& [group, n] : per_group)
    count += IsZygoteGroup(group) && !with_zygotes ? std::max(0, n - kZygoteProcesses) : n;
  return count;
}

// The processes of this process's zygote groups now (between runs: the zygotes' own).
std::set<int> ZygoteProcesses() {
  std::set<int> pids;
  const std::string marker = "grpo-sandbox/" + std::to_string(getpid()) + "-z";
  DIR* d = opendir("/proc");
  if (!d) return pids;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream cg(std::string("/proc/") + e->d_name + "/cgroup");
    std::string text((std::istreambuf_iterator<char>(cg)), std::istreambuf_iterator<char>());
    if (text.find(marker) != std::string::npos) pids.insert(std::atoi(e->d_name));
  }
  closedir(d);
  return pids;
}

// Leftover run cgroups of this process under the v1 or v2 parent (with the groups of
// zygotes, which live as long as their sandbox, when `with_zygotes`).
int LeftoverRunCgroups(bool with_zygotes = false) {
  int count = 0;
  const std::string prefix = std::to_string(getpid()) + "-";
  for (const char* parent : {"/sys/fs/cgroup/memory/grpo-sandbox", "/sys/fs/cgroup/pids/grpo-sandbox",
                             "/sys/fs/cgroup/freezer/grpo-sandbox", "/sys/fs/cgroup/cpuacct/grpo-sandbox",
                             "/sys/fs/cgroup/grpo-sandbox"}) {
    DIR* d = opendir(parent);
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind(prefix, 0) == 0 && (with_zygotes || !IsZygoteGroup(name))) ++count;
    }
    closedir(d);
  }
  return count;
}

// Every test of programs runs twice: Python through zygotes (the default), and with an
// interpreter started per run (SandboxOptions::python_zygote false, also what runs where a
// zygote cannot start). C++ runs the same way in both.
class SandboxTest : public ::testing::TestWithParam<bool> {
 protected:
  static void SetUpTestSuite() {
    for (bool zygote : {false, true}) {
      SandboxOptions opt;
      opt.python_zygote = zygote;
      absl::StatusOr<std::unique_ptr<Sandbox>> box = Sandbox::Create(opt);
      if (box.ok()) {
        boxes_[zygote] = std::shared_ptr<Sandbox>(std::move(*box));
      } else if (setup_error_ == nullptr) {
        setup_error_ = new std::string(box.status().message());
      }
    }
  }
  static void TearDownTestSuite() {
    boxes_[0].reset();
    boxes_[1].reset();
  }

  void SetUp() override {
    box_ = boxes_[GetParam()];
    // The sandbox is a required part: where it cannot be set up (no root or delegated
    // cgroups, no bwrap) every test fails with the reason rather than passing silently.
    ASSERT_TRUE(box_) << "sandbox unavailable: " << *setup_error_;
  }

  // Every test ends with the host check.
  void TearDown() override {
    if (!box_) return;
    EXPECT_EQ(SurvivingRunProcesses(), 0) << "a process of a run outlived it";
    EXPECT_EQ(LeftoverRunCgroups(), 0) << "a run's cgroup was not removed";
  }

  static Limits Quick() {
    Limits l;
    l.time_limit_ms = 1000;
    l.wall_limit_ms = 3000;
    l.memory_mb = 128;
    return l;
  }

  RunResult Exec(const Program& p, const std::string& input = "", Limits limits = Quick()) {
    RunResult r = box_->Execute(p, input, limits);
    EXPECT_NE(r.status, RunStatus::kInternalError) << r.ToJson().dump();
    return r;
  }

  std::shared_ptr<Sandbox> box_;
  static std::shared_ptr<Sandbox> boxes_[2];
  static std::string* setup_error_;
};
std::shared_ptr<Sandbox> SandboxTest::boxes_[2];
std::string* SandboxTest::setup_error_ = nullptr;
INSTANTIATE_TEST_SUITE_P(Sandbox, SandboxTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Zygote" : "InterpreterPerRun";
                         });

// Tests that make their own sandbox, or run `grpo sandbox` (Python through zygotes, the
// default), once.
class SandboxCliTest : public ::testing::Test {
 protected:
  void TearDown() override {
    EXPECT_EQ(SurvivingRunProcesses(true), 0) << "a process of a run outlived it";
    EXPECT_EQ(LeftoverRunCgroups(true), 0) << "a run's cgroup was not removed";
  }
};

// ---- comparison and reward (no sandbox needed) ----

TEST(SandboxCompareTest, Modes) {
  Comparison exact{Comparison::Mode::kExact};
  Comparison ws{Comparison::Mode::kWhitespace};
  Comparison fl{Comparison::Mode::kFloat, 1e-6, 1e-6};
  EXPECT_TRUE(OutputsMatch("1 2\n", "1 2\n", exact));
  EXPECT_FALSE(OutputsMatch("1 2\n", "1 2", exact));
  EXPECT_TRUE(OutputsMatch("1 2\n", "  1\r\n2  ", ws));
  EXPECT_FALSE(OutputsMatch("1 2", "1 2 3", ws));
  EXPECT_FALSE(OutputsMatch("0.5", "0.50", ws));
  EXPECT_TRUE(OutputsMatch("0.5 abc", "0.5000001 abc", fl));
  EXPECT_TRUE(OutputsMatch("1000000", "1000000.5", fl));  // relative
  EXPECT_FALSE(OutputsMatch("0.5", "0.6", fl));
  EXPECT_FALSE(OutputsMatch("nan", "1", fl));
  EXPECT_FALSE(OutputsMatch("abc", "abd", fl));
}

TEST(SandboxCompareTest, Reward) {
  RunResult r;
  r.tests.resize(4);
  r.passed = {true, false, true, true};
  r.tests_passed = 3;
  EXPECT_DOUBLE_EQ(Reward(r, RewardMode::kFractionPassed), 0.75);
  EXPECT_DOUBLE_EQ(Reward(r, RewardMode::kAllOrNothing), 0.0);
  r.passed[1] = true;
  r.tests_passed = 4;
  EXPECT_DOUBLE_EQ(Reward(r, RewardMode::kAllOrNothing), 1.0);
  EXPECT_DOUBLE_EQ(Reward(RunResult{}, RewardMode::kFractionPassed), 0.0);
}

TEST(SandboxCompareTest, JsonHasTheDesignFields) {
  RunResult r;
  r.status = RunStatus::kWrongAnswer;
  r.main.stdout_text = std::string(10000, 'x') + "\xff";
  nlohmann::json j = r.ToJson(100);
  for (const char* key : {"status", "exit_code", "signal", "stdout", "stderr", "wall_ms", "cpu_ms", "max_rss_kb", "tests"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["status"], "wrong_answer");
  EXPECT_EQ(j["stdout"].get<std::string>().size(), 103u);
}

// ---- cgroup v2 against a fake cgroupfs ----

class FakeCgroupV2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fake-cgroup2-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    Write(root_ + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    Write(root_ + "/cgroup.subtree_control", "");
  }
  void TearDown() override { std::system(("rm -rf " + root_).c_str()); }
  static void Write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
  static std::string Read(const std::string& path) { return ReadFileOrDie(path); }
  std::string root_;
};

TEST_F(FakeCgroupV2Test, DetectsV2AndWritesLimitsAndKill) {
  absl::StatusOr<std::unique_ptr<CgroupDriver>> driver = DetectCgroupDriver(root_, "grpo-sandbox");
  ASSERT_TRUE(driver.ok()) << driver.status();
  EXPECT_EQ((*driver)->Name(), "v2");
  EXPECT_EQ(Read(root_ + "/cgroup.subtree_control"), "+memory +pids");
  EXPECT_EQ(Read(root_ + "/grpo-sandbox/cgroup.subtree_control"), "+memory +pids");

  // The kernel would create these files in a new group; the fake creates them after mkdir
  // by pre-creating the directory (CreateRun tolerates an existing directory).
  const std::string run = root_ + "/grpo-sandbox/run1";
  ASSERT_EQ(mkdir(run.c_str(), 0755), 0);
  for (const char* f : {"cgroup.procs", "cgroup.kill", "memory.swap.max"}) Write(run + "/" + f, "");
  Write(run + "/cgroup.events", "populated 0\nfrozen 0\n");
  Write(run + "/memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n");
  Write(run + "/memory.peak", "123456\n");
  Write(run + "/cpu.stat", "usage_usec 4500\nuser_usec 4000\nsystem_usec 500\n");

  CgroupLimits limits;
  limits.memory_bytes = 64 << 20;
  limits.max_pids = 17;
  absl::StatusOr<std::unique_ptr<RunCgroup>> cg = (*driver)->CreateRun("run1", limits);
  ASSERT_TRUE(cg.ok()) << cg.status();
  EXPECT_EQ(Read(run + "/memory.max"), std::to_string(64 << 20));
  EXPECT_EQ(Read(run + "/memory.swap.max"), "0");
  EXPECT_EQ(Read(run + "/pids.max"), "17");
  EXPECT_EQ((*cg)->ProcsFiles(), std::vector<std::string>{run + "/cgroup.procs"});
  ASSERT_TRUE((*cg)->KillAll().ok());
  EXPECT_EQ(Read(run + "/cgroup.kill"), "1");
  CgroupStats stats = (*cg)->Stats();
  EXPECT_TRUE(stats.oom_killed);
  EXPECT_TRUE(stats.hit_memory_limit);
  EXPECT_EQ(stats.peak_memory_bytes, 123456);
  EXPECT_EQ(stats.cpu_usage_us, 4500);
  EXPECT_EQ(*(*cg)->CountProcs(), 0);
  // A real cgroupfs removes a group's files with rmdir; the fake must delete them first.
  std::system(("rm -f " + run + "/*").c_str());
  EXPECT_TRUE((*cg)->Remove().ok());
  struct stat st;
  EXPECT_NE(stat(run.c_str(), &st), 0);
}

TEST_F(FakeCgroupV2Test, MissingControllerIsAClearError) {
  Write(root_ + "/cgroup.controllers", "cpu io\n");
  absl::StatusOr<std::unique_ptr<CgroupDriver>> driver = DetectCgroupDriver(root_, "grpo-sandbox");
  ASSERT_FALSE(driver.ok());
  EXPECT_NE(driver.status().message().find("memory"), std::string::npos) << driver.status();
}

TEST(SandboxCreateTest, NoCgroupsFailsLoudlyUnlessAllowed) {
  char tmpl[] = "/tmp/no-cgroup-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  SandboxOptions opt;
  opt.cgroup_root = tmpl;
  absl::StatusOr<std::unique_ptr<Sandbox>> box = Sandbox::Create(opt);
  ASSERT_FALSE(box.ok());
  EXPECT_NE(box.status().message().find("cgroups"), std::string::npos) << box.status();
  opt.allow_without_cgroups = true;
  box = Sandbox::Create(opt);
  ASSERT_TRUE(box.ok()) << box.status();
  EXPECT_EQ((*box)->CgroupMode(), "none");
  RunResult r = (*box)->Execute(Py("print('hi')"), "", Limits{});
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  ASSERT_FALSE(r.notes.empty());
  EXPECT_NE(r.notes[0].find("rlimits only"), std::string::npos);
  rmdir(tmpl);
}

// ---- ordinary programs ----

TEST_P(SandboxTest, PythonEchoAndTests) {
  RunRequest req;
  req.program = Py("a, b = map(int, input().split())\nprint(a + b)\n");
  req.tests = {{"1 2\n", "3\n"}, {"5 5\n", "10"}, {"2 2\n", "5\n"}};
  req.limits = Quick();
  RunResult r = box_->Run(req);
  EXPECT_EQ(r.status, RunStatus::kWrongAnswer) << r.ToJson().dump();
  EXPECT_EQ(r.tests_passed, 2);
  EXPECT_EQ(r.passed, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(r.main.stdout_text, "4\n");
  EXPECT_NEAR(Reward(r, RewardMode::kFractionPassed), 2.0 / 3, 1e-9);
  req.tests.pop_back();
  r = box_->Run(req);
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_DOUBLE_EQ(Reward(r, RewardMode::kAllOrNothing), 1.0);
}

TEST_P(SandboxTest, LargeStdinAndExitCodes) {
  std::string big(3 << 20, 'a');  // larger than a pipe buffer: written while output is read
  RunResult r = Exec(Py("import sys\nd = sys.stdin.read()\nprint(len(d))\nsys.exit(3)\n"), big);
  EXPECT_EQ(r.status, RunStatus::kRuntimeError);
  EXPECT_EQ(r.main.exit_code, 3);
  EXPECT_EQ(r.main.stdout_text, std::to_string(big.size()) + "\n");
  r = Exec(Py("raise ValueError('boom')"));
  EXPECT_EQ(r.status, RunStatus::kRuntimeError);
  EXPECT_NE(r.main.stderr_text.find("ValueError: boom"), std::string::npos);
  r = Exec(Py("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"));
  EXPECT_EQ(r.status, RunStatus::kRuntimeError);
  EXPECT_EQ(r.main.signal, 11);
}

// A program runs as in a fresh interpreter: tracebacks start at its own code, sys.exit
// with a message prints it and exits 1, threads are joined and atexit runs at the end, and
// it can signal itself.
TEST_P(SandboxTest, PythonExitsAsAFreshInterpreterDoes) {
  RunResult r = Exec(Py("def f():\n    1/0\nf()\n"));
  EXPECT_EQ(r.status, RunStatus::kRuntimeError);
  EXPECT_EQ(r.main.stderr_text.rfind("Traceback (most recent call last):\n  File \"/box/prog/main.py\", line 3, in <module>\n", 0), 0u)
      << r.main.stderr_text;
  EXPECT_NE(r.main.stderr_text.find("    1/0\n"), std::string::npos) << r.main.stderr_text;
  r = Exec(Py("import sys\nsys.exit('bye now')\n"));
  EXPECT_EQ(r.main.exit_code, 1);
  EXPECT_EQ(r.main.stderr_text, "bye now\n");
  r = Exec(Py("import atexit, threading, time\natexit.register(print, 'atexit')\n"
              "threading.Thread(target=lambda: (time.sleep(0.1), print('thread'))).start()\nprint('main')\n"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "main\nthread\natexit\n");
  r = Exec(Py("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nprint('survived')\n"));
  EXPECT_EQ(r.status, RunStatus::kRuntimeError) << r.ToJson().dump();
  EXPECT_EQ(r.main.signal, SIGTERM);
  EXPECT_EQ(r.main.stdout_text, "");
  r = Exec(Py("import sys\ndef d(n): return n if n == 0 else d(n - 1)\nprint(d(sys.getrecursionlimit() - 50))\n"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
}

// A program holds its stdio and nothing else of the host's or the zygote's: no other fd,
// no capability (effective, permitted or bounding), no_new_privs and the seccomp filter on.
TEST_P(SandboxTest, OnlyItsOwnStdioAndNoCapabilities) {
  RunResult r = Exec(Py("import os\nprint(sorted(os.listdir('/proc/self/fd')))\n"
                        "for line in open('/proc/self/status'):\n"
                        "    if line.split(':')[0] in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp'):\n"
                        "        print(line.split()[1])\n"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text,
            "['0', '1', '2', '3']\n0000000000000000\n0000000000000000\n0000000000000000\n0000000000000000\n"
            "0000000000000000\n1\n2\n");
}

// The run's init (pid 1) is out of the program's reach: its signals do not end the run
// early, and its memory can be neither read nor written through /proc.
TEST_P(SandboxTest, InitIsOutOfReach) {
  RunResult r = Exec(Py("import os, signal, time\nfor s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):\n"
                        "    try:\n        os.kill(1, s)\n    except OSError:\n        pass\ntime.sleep(0.2)\n"
                        "for mode in ('rb', 'r+b'):\n    try:\n        open('/proc/1/mem', mode).read(1)\n"
                        "        print('opened', mode)\n    except OSError:\n        print('refused', mode)\n"
                        "print('alive')\n"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "refused rb\nrefused r+b\nalive\n");
}

// A source too deeply nested to compile fails as `python3 main.py` does (exit 1, the
// parser's MemoryError), not as a compile error, and the next program runs.
TEST_P(SandboxTest, SourceTooDeepToCompile) {
  RunResult r = Exec(Py("x = " + std::string(100000, '-') + "1\n"));
  EXPECT_EQ(r.status, RunStatus::kRuntimeError) << r.ToJson().dump();
  EXPECT_EQ(r.main.exit_code, 1);
  EXPECT_EQ(Exec(Py("print('next')")).main.stdout_text, "next\n");
}

// What one program changes of the interpreter, the environment or the files is not there
// for the next, though (with zygotes) both forked from the same interpreter.
TEST_P(SandboxTest, NothingOfOneProgramReachesTheNext) {
  RunResult r = Exec(Py("import builtins, json, os, sys\nbuiltins.leak = 1\njson.dumps = None\n"
                        "os.environ['LEAK'] = '1'\nos.putenv('LEAK2', '1')\nsys.modules['leakmod'] = json\n"
                        "sys.path.append('/tmp')\nsys.setrecursionlimit(50)\nimport random\nrandom.seed(5)\n"
                        "open('/tmp/f', 'w').write('x')\nopen('/box/work/g', 'w').write('y')\nprint('changed')\n"));
  EXPECT_EQ(r.main.stdout_text, "changed\n") << r.ToJson().dump();
  r = Exec(Py("import builtins, json, os, sys\n"
              "seen = [hasattr(builtins, 'leak'), json.dumps is None, 'LEAK' in os.environ, 'LEAK2' in os.environ,\n"
              "        'leakmod' in sys.modules, '/tmp' in sys.path, sys.getrecursionlimit() < 1000,\n"
              "        os.path.exists('/tmp/f'), os.path.exists('/box/work/g'), len(os.listdir('/box/work')) > 0]\n"
              "print(seen)\n"));
  EXPECT_EQ(r.main.stdout_text, "[False, False, False, False, False, False, False, False, False, False]\n")
      << r.ToJson().dump();
}

// A Python program the interpreter refuses is a compile error (run on no further test);
// a SyntaxError raised while running is a runtime error.
TEST_P(SandboxTest, PythonThatDoesNotCompileIsACompileError) {
  for (const char* src : {"n = int(input())\nprint n*2\n", "for i in range(3)\n    print(i)\n",
                          "if True:\nprint(1)\n", "if True:\n\tx = 1\n        y = 2\n"}) {
    RunRequest req;
    req.program = Py(src);
    req.tests = {{"3\n", "6\n"}, {"4\n", "8\n"}, {"5\n", "10\n"}};
    req.limits = Quick();
    RunResult r = box_->Run(req);
    EXPECT_EQ(r.status, RunStatus::kCompileError) << src << r.ToJson().dump();
    EXPECT_EQ(r.tests.size(), 1u) << src;
    EXPECT_EQ(r.tests_passed, 0);
    EXPECT_EQ(Exec(Py(src), "3\n").status, RunStatus::kCompileError) << src;
  }
  for (const char* src : {"raise SyntaxError('made at run time')\n", "exec('print 1')\n",
                          "import sys\nsys.stderr.write('SyntaxError: x\\n')\nsys.exit(2)\n",
                          "print(1)\nprint 2\n" /* refused before the first line runs */}) {
    RunResult r = Exec(Py(src));
    const RunStatus want = std::string(src).rfind("print(1)", 0) == 0 ? RunStatus::kCompileError : RunStatus::kRuntimeError;
    EXPECT_EQ(r.status, want) << src << r.ToJson().dump();
  }
}

TEST_P(SandboxTest, CppCompilesInsideAndRuns) {
  RunRequest req;
  req.program = {Language::kCpp,
                 "#include <iostream>\n#include <iomanip>\nint main(){double x; std::cin >> x;"
                 " std::cout << std::setprecision(10) << x / 3 << \"\\n\";}\n"};
  req.tests = {{"1\n", "0.333333"}};
  req.limits = Quick();
  req.comparison = {Comparison::Mode::kFloat, 1e-5, 0};
  RunResult r = box_->Run(req);
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  r = box_->Run({Hostile("compile_bomb.cc"), {{"", ""}}, Quick(), {}});
  EXPECT_EQ(r.status, RunStatus::kCompileError);
  EXPECT_NE(r.main.stderr_text.find("undefined_name"), std::string::npos) << r.ToJson().dump();
  EXPECT_EQ(Reward(r, RewardMode::kFractionPassed), 0.0);
}

// ---- hostile programs ----

TEST_P(SandboxTest, ForkBomb) {
  Limits limits = Quick();
  limits.memory_mb = 512;  // the bound under test is the pids limit, not memory
  RunResult r = Exec(Hostile("fork_bomb.py"), "", limits);
  EXPECT_EQ(r.status, RunStatus::kTimeLimit) << r.ToJson().dump();
}

TEST_P(SandboxTest, ThreadBomb) {
  RunResult r = box_->Execute(Hostile("thread_bomb.cc"), "", Quick());
  EXPECT_EQ(r.status, RunStatus::kTimeLimit) << r.ToJson().dump();
}

TEST_P(SandboxTest, MemoryBomb) {
  RunResult r = Exec(Hostile("memory_bomb.py"));
  EXPECT_EQ(r.status, RunStatus::kMemoryLimit) << r.ToJson().dump();
  r = Exec(Hostile("memory_bomb.cc"));
  EXPECT_EQ(r.status, RunStatus::kMemoryLimit) << r.ToJson().dump();
}

TEST_P(SandboxTest, InfiniteLoopAndSleep) {
  RunResult r = Exec(Hostile("infinite_loop.cc"));
  EXPECT_EQ(r.status, RunStatus::kTimeLimit) << r.ToJson().dump();
  EXPECT_GE(r.main.cpu_ms, 900) << r.ToJson().dump();
  r = Exec(Hostile("sleep_forever.py"));
  EXPECT_EQ(r.status, RunStatus::kTimeLimit) << r.ToJson().dump();
  EXPECT_LT(r.main.wall_ms, 6000);
}

TEST_P(SandboxTest, CpuOverTheLimitThatExitsCleanlyIsTimeLimit) {
  Limits limits = Quick();
  limits.time_limit_ms = 300;  // RLIMIT_CPU is 2 s, so only the CPU accounting can catch it
  limits.wall_limit_ms = 5000;
  RunResult r = Exec(Py("import time\nt = time.process_time()\nwhile time.process_time() - t < 0.8: pass\n"), "", limits);
  EXPECT_EQ(r.status, RunStatus::kTimeLimit) << r.ToJson().dump();
  EXPECT_GE(r.main.cpu_ms, 700) << r.ToJson().dump();
}

TEST_P(SandboxTest, OutputFlood) {
  RunResult r = Exec(Hostile("output_flood.py"));
  EXPECT_EQ(r.status, RunStatus::kOutputLimit) << r.ToJson(100).dump();
  EXPECT_EQ(r.main.stdout_text.size(), size_t{1} << 20);
}

TEST_P(SandboxTest, WriteOutsideScratch) {
  RunResult r = Exec(Hostile("write_outside.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "WROTE:\n");
  struct stat st;
  for (const char* p : {"/etc/grpo_pwned", "/usr/grpo_pwned", "/grpo_pwned", "/root/grpo_pwned",
                        "/tmp/grpo_sandbox_private_tmp", "/dev/grpo_pwned"})
    EXPECT_NE(stat(p, &st), 0) << p << " exists on the host";
}

TEST_P(SandboxTest, ReadHostFiles) {
  RunResult r = Exec(Hostile("read_host.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_NE(r.main.stdout_text.find("FOUND:\n"), std::string::npos) << r.main.stdout_text;
  // /proc holds only the sandbox's own processes, whose environment is the sandbox's.
  EXPECT_EQ(r.main.stdout_text.find("GRPO_SOURCE_DIR"), std::string::npos) << r.main.stdout_text;
  EXPECT_NE(r.main.stdout_text.find("HOME=/box/work"), std::string::npos) << r.main.stdout_text;
  // Only the sandbox's own pid namespace: bwrap's init and the program.
  EXPECT_NE(r.main.stdout_text.find("PIDS:2\n"), std::string::npos) << r.main.stdout_text;
}

TEST_P(SandboxTest, Network) {
  for (const char* name : {"net_tcp_local.py", "net_tcp_external.py", "net_udp.py", "net_raw.cc"}) {
    RunResult r = Exec(Hostile(name));
    EXPECT_EQ(r.status, RunStatus::kDenied) << name << " " << r.ToJson().dump();
    EXPECT_EQ(r.main.stdout_text.find("CONNECTED"), std::string::npos);
  }
  // DNS: no resolver config exists, and the lookup's socket would be denied anyway.
  RunResult r = Exec(Hostile("net_dns.py"));
  EXPECT_TRUE(r.status == RunStatus::kDenied || r.status == RunStatus::kRuntimeError) << r.ToJson().dump();
}

TEST_P(SandboxTest, KillParent) {
  RunResult r = Exec(Hostile("kill_parent.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();  // its ppid is the namespace's init
  EXPECT_EQ(r.main.stdout_text, "ALIVE\n");
}

TEST_P(SandboxTest, DaemonDoesNotOutliveTheRun) {
  RunResult r = Exec(Hostile("daemon.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "PARENT DONE\n");
  // TearDown checks that no process of the run is left and its cgroup is gone.
}

TEST_P(SandboxTest, RaiseLimits) {
  RunResult r = Exec(Hostile("raise_limits.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "RAISED:\n");
}

TEST_P(SandboxTest, NothingPersistsBetweenRuns) {
  RunResult r = Exec(Hostile("persist_write.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  r = Exec(Hostile("persist_read.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "SEEN: WORK:\n");
}

TEST_P(SandboxTest, DeniedSyscalls) {
  for (const char* name : {"ptrace.cc", "mount.cc", "unshare.py", "personality.cc"}) {
    RunResult r = Exec(Hostile(name));
    EXPECT_EQ(r.status, RunStatus::kDenied) << name << " " << r.ToJson().dump();
    EXPECT_EQ(r.main.signal, 31) << name;
  }
}

TEST_P(SandboxTest, ProcSysIsNotWritable) {
  RunResult r = Exec(Hostile("proc_sys.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "FAILED:3 UID:65534\n");
}

TEST_F(SandboxCliTest, CreateSweepsWhatACrashedHostLeft) {
  // pid 999999999 cannot exist (pid_max is at most 2^22).
  const std::string id = "999999999-7";
  std::vector<std::string> groups;
  for (const char* c : {"memory", "pids", "freezer", "cpuacct"}) {
    std::string parent = std::string("/sys/fs/cgroup/") + c + "/grpo-sandbox";
    struct stat st;
    if (stat(parent.c_str(), &st) != 0) continue;
    groups.push_back(parent + "/" + id);
    ASSERT_EQ(mkdir(groups.back().c_str(), 0755), 0) << groups.back();
  }
  const std::string scratch = "/tmp/grpo-sbx-work-999999999-abcdef";
  ASSERT_EQ(mkdir(scratch.c_str(), 0700), 0);
  std::ofstream(scratch + "/left") << "x";
  absl::StatusOr<std::unique_ptr<Sandbox>> box = Sandbox::Create(SandboxOptions{});
  ASSERT_TRUE(box.ok()) << box.status();
  struct stat st;
  for (const std::string& g : groups) EXPECT_NE(stat(g.c_str(), &st), 0) << g << " survived";
  EXPECT_NE(stat(scratch.c_str(), &st), 0);
}

// A sandbox's zygotes (one idle after a Python run) go with it: no process, no group.
TEST_F(SandboxCliTest, ZygotesGoWithTheirSandbox) {
  absl::StatusOr<std::unique_ptr<Sandbox>> box = Sandbox::Create(SandboxOptions{});
  ASSERT_TRUE(box.ok()) << box.status();
  RunResult r = (*box)->Execute(Py("print(6 * 7)"), "", Limits{});
  EXPECT_EQ(r.main.stdout_text, "42\n") << r.ToJson().dump();
  EXPECT_EQ(SurvivingRunProcesses(true), 3) << "bwrap, its init and the idle zygote";
  EXPECT_GE(LeftoverRunCgroups(true), 1);
  EXPECT_EQ(SurvivingRunProcesses(), 0);
  box->reset();
  EXPECT_EQ(SurvivingRunProcesses(true), 0);
  EXPECT_EQ(LeftoverRunCgroups(true), 0);
}

// A zygote outlives the thread that started it (a pool's threads come and go): another
// thread's run finds it alive.
TEST_F(SandboxCliTest, AZygoteOutlivesTheThreadThatStartedIt) {
  absl::StatusOr<std::unique_ptr<Sandbox>> box = Sandbox::Create(SandboxOptions{});
  ASSERT_TRUE(box.ok()) << box.status();
  std::thread([&] { EXPECT_EQ((*box)->Execute(Py("print(1)"), "", Limits{}).main.stdout_text, "1\n"); }).join();
  const std::set<int> before = ZygoteProcesses();
  ASSERT_EQ(before.size(), 3u);
  RunResult r = (*box)->Execute(Py("import time\ntime.sleep(0.3)\nprint(2)"), "", Limits{});
  EXPECT_EQ(r.main.stdout_text, "2\n") << r.ToJson().dump();
  EXPECT_EQ(ZygoteProcesses(), before) << "the zygote died with its thread and was started again";
}

// An idle zygote killed from outside (the OOM killer, an operator) costs nothing but a
// new one: the next program runs.
TEST_F(SandboxCliTest, AZygoteKilledWhileIdleIsReplaced) {
  absl::StatusOr<std::unique_ptr<Sandbox>> box = Sandbox::Create(SandboxOptions{});
  ASSERT_TRUE(box.ok()) << box.status();
  EXPECT_EQ((*box)->Execute(Py("print(1)"), "", Limits{}).main.stdout_text, "1\n");
  ASSERT_EQ(SurvivingRunProcesses(true), 3);
  // This process's zygote only (a pkill by name would kill other test processes' too).
  int killed = 0;
  for (int pid : ZygoteProcesses()) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name.rfind("python", 0) == 0 && ::kill(pid, SIGKILL) == 0) ++killed;
  }
  ASSERT_EQ(killed, 1);
  RunResult r = (*box)->Execute(Py("print(2)"), "", Limits{});
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "2\n");
  for (const std::string& note : r.notes) EXPECT_EQ(note.find("interpreter each"), std::string::npos) << note;
}

// ---- many runs ----

long RssKb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

TEST_P(SandboxTest, PoolFloodKeepsMemoryFlat) {
  SandboxPool pool(box_, /*workers=*/4, /*queue_bound=*/8);
  auto flood = [&](int n) {
    std::vector<std::future<RunResult>> futures;
    for (int i = 0; i < n; ++i) {
      RunRequest req;
      req.program = Py("print(int(input()) * 2)");
      req.tests = {{std::to_string(i) + "\n", std::to_string(2 * i) + "\n"}};
      req.limits = Quick();
      futures.push_back(pool.Submit(std::move(req)));
    }
    int ok = 0;
    for (auto& f : futures) ok += f.get().status == RunStatus::kOk;
    return ok;
  };
  EXPECT_EQ(flood(20), 20);  // warm up allocator arenas of the worker threads
  long before = RssKb();
  EXPECT_EQ(flood(200), 200);
  long after = RssKb();
  std::cerr << "RSS before 200 runs: " << before << " kB, after: " << after << " kB\n";
  EXPECT_LT(after - before, 4096) << "RSS grew from " << before << " kB to " << after << " kB";
  // A full queue refuses TrySubmit rather than growing.
  int refused = 0;
  std::vector<std::future<RunResult>> held;
  for (int i = 0; i < 40; ++i) {
    // One test each, so each job runs a program (a request without tests runs nothing).
    std::optional<std::future<RunResult>> f = pool.TrySubmit({Py("pass"), {{"", ""}}, Quick(), {}});
    if (f) held.push_back(std::move(*f));
    else ++refused;
  }
  EXPECT_GT(refused, 0);
  for (auto& f : held) f.get();
}

// Program output is arbitrary bytes. It is kept as it was printed (tests compare the raw
// bytes), and every string of the result (JSON, and what goes into a proto string) is
// valid UTF-8, ill-formed sequences replaced by U+FFFD.
TEST_P(SandboxTest, OutputThatIsNotUtf8) {
  RunResult r = Exec(Hostile("bad_utf8_output.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  EXPECT_NE(r.main.stdout_text.find("\xed\xa0\x80"), std::string::npos);
  EXPECT_EQ(r.main.stdout_text.back(), '\xe2');  // cut short at the very end, kept
  std::string dumped;
  ASSERT_NO_THROW(dumped = r.ToJson().dump());  // the strict handler throws on bad UTF-8
  EXPECT_TRUE(IsValidUtf8(dumped));
  nlohmann::json j = nlohmann::json::parse(dumped);
  const std::string out = j["stdout"], err = j["stderr"];
  EXPECT_EQ(out.rfind("ok ", 0), 0u) << out;
  EXPECT_NE(out.find(kReplacementChar), std::string::npos);
  EXPECT_NE(out.find(std::string("\0", 1)), std::string::npos);  // NUL is valid UTF-8: kept
  EXPECT_NE(err.find("err ok"), std::string::npos) << err;

  // The raw bytes are what a test compares, on both sides.
  RunRequest req;
  req.program = Hostile("bad_utf8_output.py");
  req.tests = {{"", r.main.stdout_text}};
  req.limits = Quick();
  req.comparison = {Comparison::Mode::kExact};
  RunResult same = box_->Run(req);
  EXPECT_EQ(same.status, RunStatus::kOk);
  req.tests = {{"", Utf8Lossy(r.main.stdout_text)}};
  EXPECT_EQ(box_->Run(req).status, RunStatus::kWrongAnswer);

  // A compiler error that quotes the program's bad bytes.
  RunResult c = box_->Run({Hostile("bad_utf8_compile_error.cc"), {{"", ""}}, Quick(), {}});
  EXPECT_EQ(c.status, RunStatus::kCompileError);
  ASSERT_NO_THROW(dumped = c.ToJson().dump());
  EXPECT_TRUE(IsValidUtf8(dumped));
}

// Run scratch mounts of this process (other test processes may be mid-run) still mounted.
int ScratchMounts() {
  std::ifstream in("/proc/self/mountinfo");
  const std::string mine = "/grpo-sbx-work-" + std::to_string(getpid()) + "-";
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(mine) != std::string::npos;
  return n;
}

// Concurrent runs share the read-only system files; locks and inotify on them would be a
// channel between runs, so both are refused (with an errno, the program goes on).
TEST_P(SandboxTest, NoLocksOrWatchesOnSharedFiles) {
  RunResult r = Exec(Hostile("lock_shared_file.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text.rfind("refused ", 0), 0u) << r.main.stdout_text;
  r = Exec(Hostile("inotify_watch.py"));
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text.rfind("refused", 0), 0u) << r.main.stdout_text;
  // C++ through libc, which compiles with the same filter in force.
  r = box_->Execute({Language::kCpp,
                     "#include <sys/file.h>\n#include <fcntl.h>\n#include <cstdio>\n"
                     "int main(){int fd=open(\"/usr/bin/g++\",O_RDONLY);"
                     "std::printf(\"%d %d\\n\", flock(fd, LOCK_SH|LOCK_NB), lockf(fd, F_TEST, 0));}"},
                    "", Quick());
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "-1 -1\n");
}

// The run's writable space (cwd and /tmp) is one tmpfs capped in files and bytes: a run
// making files without end, or filling the disk, is stopped by the cap, not the clock.
TEST_P(SandboxTest, ScratchIsCappedInInodesAndBytes) {
  Limits limits = Quick();
  limits.time_limit_ms = 5000;
  limits.wall_limit_ms = 10000;
  RunResult r = Exec(Hostile("inode_flood.py"), "", limits);
  ASSERT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  int64_t files = -1;
  char why[32] = "";
  ASSERT_EQ(std::sscanf(r.main.stdout_text.c_str(), "stopped %ld %31s", &files, why), 2) << r.main.stdout_text;
  EXPECT_EQ(std::string(why), "ENOSPC");
  EXPECT_GE(files, limits.scratch_inodes - 8);
  EXPECT_LE(files, limits.scratch_inodes);
  EXPECT_LT(r.main.cpu_ms, 2000) << "the cap, not the time limit, should stop it";

  limits.memory_mb = 256;
  r = Exec(Hostile("disk_fill.py"), "", limits);
  ASSERT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  int64_t mib = -1;
  ASSERT_EQ(std::sscanf(r.main.stdout_text.c_str(), "stopped %ld %31s", &mib, why), 2) << r.main.stdout_text;
  EXPECT_EQ(std::string(why), "ENOSPC");
  EXPECT_LE(mib, limits.scratch_mb);
  EXPECT_GE(mib, limits.scratch_mb / 2);

  // A smaller cap is the run's own.
  limits.scratch_inodes = 50;
  r = Exec(Hostile("inode_flood.py"), "", limits);
  ASSERT_EQ(std::sscanf(r.main.stdout_text.c_str(), "stopped %ld", &files), 1) << r.main.stdout_text;
  EXPECT_LE(files, 50);
  EXPECT_EQ(ScratchMounts(), 0) << "a run's scratch tmpfs is still mounted";
  EXPECT_TRUE(r.notes.empty()) << r.ToJson().dump();
}

// Where this process may not mount, bwrap's tmpfs still caps the bytes, and says so.
TEST(SandboxScratchFallback, BwrapTmpfsCapsBytes) {
  SandboxOptions opt;
  opt.mount_scratch = false;
  absl::StatusOr<std::unique_ptr<Sandbox>> box = Sandbox::Create(opt);
  ASSERT_TRUE(box.ok()) << box.status();
  Limits limits;
  limits.time_limit_ms = 5000;
  limits.memory_mb = 256;
  RunResult r = (*box)->Execute(Hostile("disk_fill.py"), "", limits);
  ASSERT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  int64_t mib = -1;
  char why[32] = "";
  ASSERT_EQ(std::sscanf(r.main.stdout_text.c_str(), "stopped %ld %31s", &mib, why), 2) << r.main.stdout_text;
  EXPECT_EQ(std::string(why), "ENOSPC");
  EXPECT_LE(mib, limits.scratch_mb);
  ASSERT_EQ(r.notes.size(), 1u);
  EXPECT_NE(r.notes[0].find("scratch capped in bytes only"), std::string::npos) << r.notes[0];
  r = (*box)->Execute(Py("open('a','w').write('1'); open('/tmp/b','w').write('2'); print(open('a').read()+open('/tmp/b').read())"),
                      "", limits);
  EXPECT_EQ(r.status, RunStatus::kOk) << r.ToJson().dump();
  EXPECT_EQ(r.main.stdout_text, "12\n");
}

// ---- the CLI ----

int RunCli(const std::string& args, std::string* out) {
  const char* bin = std::getenv("GRPO_BIN_DIR");
  std::string cmd = std::string(bin ? bin : GRPO_DEFAULT_BIN_DIR) + "/grpo sandbox " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  out->clear();
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out->append(buf, n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST_F(SandboxCliTest, CommandLine) {
  const std::string dir = SourceDir() + "/tests/sandbox_hostile/";
  std::string out;
  EXPECT_EQ(RunCli("--language python --file " + dir + "sleep_forever.py --time-limit-ms 300", &out), 0);
  nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j["status"], "time_limit") << out;
  EXPECT_EQ(RunCli("--language cpp --file " + dir + "compile_bomb.cc", &out), 0);
  EXPECT_EQ(nlohmann::json::parse(out)["status"], "compile_error");
  EXPECT_EQ(RunCli("--language cpp --file " + dir + "ptrace.cc --memory-mb 64", &out), 0);
  EXPECT_EQ(nlohmann::json::parse(out)["status"], "denied");
  for (const char* bad : {"--language python --file bad_utf8_output.py", "--language cpp --file bad_utf8_compile_error.cc"}) {
    std::string args = bad;
    args.insert(args.find("--file ") + 7, dir);
    EXPECT_EQ(RunCli(args, &out), 0) << args;
    EXPECT_TRUE(IsValidUtf8(out)) << args;
    EXPECT_FALSE(nlohmann::json::parse(out, nullptr, false).is_discarded()) << out;
  }
  EXPECT_EQ(RunCli("--language cobol --file " + dir + "ptrace.cc", &out), 2);
  EXPECT_EQ(RunCli("--language python --file /nonexistent.py", &out), 2);
  EXPECT_EQ(RunCli("--language python --file " + dir + "daemon.py --time-limit-ms abc", &out), 2);
  EXPECT_EQ(RunCli("--file " + dir + "daemon.py", &out), 2);
}

// The grpo binary the CLI tests run, and a shell command's whole stdout.
std::string GrpoBinary() {
  const char* bin = std::getenv("GRPO_BIN_DIR");
  return std::string(bin ? bin : GRPO_DEFAULT_BIN_DIR) + "/grpo";
}
std::string CommandOutput(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  pclose(p);
  return out;
}

// Inside a container whose /proc is partly masked (Docker's default: read-only
// /proc/sys and friends, /dev/null over /proc/kcore), the kernel refuses the sandbox a
// fresh proc mount; issue #23's reward containers scored every code task as an internal
// error for it. The sandbox runs programs without /proc there and says so.
TEST_F(SandboxCliTest, MaskedProcLikeDockerStillRuns) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a mount namespace";
  const std::string grpo = GrpoBinary();
  const std::string dir = ::testing::TempDir() + "/masked-proc-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  {
    std::ofstream(dir + "/p.py") << "import os\nprint('proc' if os.path.exists('/proc/1') else 'no-proc', int(input()) * 2)\n";
    std::ofstream(dir + "/p.cc") << "#include <cstdio>\n#include <unistd.h>\nint main(){int x; if (scanf(\"%d\", &x) != 1) "
                                    "return 1; printf(\"%s %d\\n\", access(\"/proc/1\", F_OK) ? \"no-proc\" : \"proc\", 2 * x);}\n";
    std::ofstream(dir + "/in") << "21\n";
  }
  auto run = [&](const std::string& lang, const std::string& file, bool masked) {
    std::string mask = masked ? "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys && " : "";
    std::string cmd = "unshare -m sh -c 'mount --make-rprivate / && " + mask + grpo + " sandbox --language " + lang +
                      " --file " + dir + "/" + file + " --stdin " + dir + "/in' 2>/dev/null";
    return nlohmann::json::parse(CommandOutput(cmd), nullptr, false);
  };
  for (auto [lang, file] : {std::pair{"python", "p.py"}, std::pair{"cpp", "p.cc"}}) {
    nlohmann::json plain = run(lang, file, false);
    ASSERT_FALSE(plain.is_discarded()) << lang;
    EXPECT_EQ(plain["status"], "ok") << plain.dump();
    EXPECT_EQ(plain["stdout"], "proc 42\n") << plain.dump();
    EXPECT_EQ(plain.dump().find("no /proc"), std::string::npos) << plain.dump();

    nlohmann::json masked = run(lang, file, true);
    ASSERT_FALSE(masked.is_discarded()) << lang;
    EXPECT_EQ(masked["status"], "ok") << masked.dump();
    EXPECT_EQ(masked["stdout"], "no-proc 42\n") << masked.dump();
    EXPECT_NE(masked.dump().find("no /proc in the sandbox"), std::string::npos) << masked.dump();
  }
  std::filesystem::remove_all(dir);
}

// The reward container's case (issue #23): the host process is itself unprivileged
// (uid 10001, no capabilities, no writable cgroup tree). Programs run as that uid, with
// rlimits and their own pid namespace; hostile ones are still stopped and leave nothing.
TEST_F(SandboxCliTest, UnprivilegedHostProcessWithoutCgroups) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another uid";
  const std::string grpo = GrpoBinary();
  const std::string dir = ::testing::TempDir() + "/unpriv-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::ofstream(dir + "/p.py") << "import os\nprint(os.getuid(), int(input()) * 2)\n";
  std::ofstream(dir + "/in") << "21\n";
  const std::string hostile = SourceDir() + "/tests/sandbox_hostile/";
  auto run = [&](const std::string& args) {
    return CommandOutput("setpriv --reuid 10001 --regid 10001 --clear-groups " + grpo + " sandbox " + args + " 2>&1");
  };
  // Without the permission to run without cgroups it refuses, and says why.
  std::string refused = run("--language python --file " + dir + "/p.py --stdin " + dir + "/in");
  EXPECT_NE(refused.find("cgroup"), std::string::npos) << refused;
  nlohmann::json ok = nlohmann::json::parse(
      run("--language python --file " + dir + "/p.py --stdin " + dir + "/in --allow-no-cgroups"), nullptr, false);
  ASSERT_FALSE(ok.is_discarded());
  EXPECT_EQ(ok["status"], "ok") << ok.dump();
  EXPECT_EQ(ok["stdout"], "10001 42\n") << ok.dump();
  EXPECT_NE(ok.dump().find("no cgroups: rlimits only"), std::string::npos) << ok.dump();
  for (auto [file, want] : {std::pair{"fork_bomb.py", "runtime_error|time_limit|memory_limit"},
                            std::pair{"sleep_forever.py", "time_limit"}, std::pair{"daemon.py", "ok|runtime_error"},
                            std::pair{"memory_bomb.py", "memory_limit|runtime_error"}}) {
    nlohmann::json r = nlohmann::json::parse(
        run(std::string("--language python --time-limit-ms 2000 --memory-mb 128 --allow-no-cgroups --file ") +
            hostile + file),
        nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << file;
    const std::string status = r["status"].get<std::string>();
    EXPECT_NE(std::string("|") .append(want).append("|").find("|" + status + "|"), std::string::npos)
        << file << ": " << r.dump();
  }
  // Nothing of uid 10001 outlives its run: the pid namespace dies with it (the kernel
  // tears it down just after the result, so allow it a bounded moment).
  int left = -1;
  for (int i = 0; i < 100 && left != 0; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    left = std::atoi(CommandOutput("pgrep -u 10001 | wc -l").c_str());
  }
  EXPECT_EQ(left, 0) << "processes of uid 10001 survived their runs by 5 s";
  std::filesystem::remove_all(dir);
}

// The process limit is the run's own, not its uid's (issue #23): in a container the
// programs' uid is also the reward server's, the other replica's and its runs'. With
// more tasks of that uid alive than any per-uid backstop allows, a run still starts, and
// a run that forks until refused gets max_processes (64 by default) and no more.
TEST_F(SandboxCliTest, ProcessLimitIsPerRunNotPerUid) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to become another uid";
  const std::string grpo = GrpoBinary();
  const std::string dir = ::testing::TempDir() + "/nproc-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  // Forks sleeping children until the kernel refuses, then prints how many it made.
  std::ofstream(dir + "/count.py") << "import os, time\nn = 0\nwhile n < 1000:\n    try:\n        pid = os.fork()\n"
                                      "    except OSError:\n        break\n    if pid == 0:\n        os.closerange(0, 3)\n"
                                      "        time.sleep(30)\n        os._exit(0)\n    n += 1\nprint(n)\n";
  // 1400 threads of uid 10002, more than the old per-uid backstop (64 * 16 + 256).
  FILE* holder = popen("exec setpriv --reuid 10002 --regid 10002 --clear-groups /usr/bin/python3 -c '"
                       "import threading, time\nthreading.stack_size(65536)\ne = threading.Event()\n"
                       "for _ in range(1400): threading.Thread(target=e.wait, args=(60,), daemon=True).start()\n"
                       "print(\"ready\", flush=True)\ntime.sleep(60)'",
                       "r");
  ASSERT_NE(holder, nullptr);
  char line[64] = {0};
  ASSERT_NE(fgets(line, sizeof(line), holder), nullptr) << "the holder of 1400 threads did not start";
  ASSERT_STREQ(line, "ready\n");
  const std::string as_10002 = "setpriv --reuid 10002 --regid 10002 --clear-groups " + grpo +
                               " sandbox --language python --allow-no-cgroups --file ";
  nlohmann::json r = nlohmann::json::parse(CommandOutput(as_10002 + dir + "/count.py 2>&1"), nullptr, false);
  ASSERT_FALSE(r.is_discarded());
  EXPECT_EQ(r["status"], "ok") << r.dump();
  const int forked = std::atoi(r["stdout"].get<std::string>().c_str());
  EXPECT_LE(forked, 64) << r.dump();
  EXPECT_GE(forked, 60) << r.dump();
  // A fork bomb under the same uid is stopped and leaves the holder's uid able to start runs.
  nlohmann::json bomb = nlohmann::json::parse(
      CommandOutput(as_10002 + SourceDir() + "/tests/sandbox_hostile/fork_bomb.py --time-limit-ms 1000 2>&1"), nullptr,
      false);
  ASSERT_FALSE(bomb.is_discarded());
  EXPECT_EQ(bomb["status"], "time_limit") << bomb.dump();
  std::ofstream(dir + "/p.py") << "print('after')\n";
  nlohmann::json after = nlohmann::json::parse(CommandOutput(as_10002 + dir + "/p.py 2>&1"), nullptr, false);
  ASSERT_FALSE(after.is_discarded());
  EXPECT_EQ(after["stdout"], "after\n") << after.dump();
  (void)std::system("pkill -KILL -u 10002");
  pclose(holder);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace grpo::sandbox
