// medic: the operator CLI. All logic lives in src/cli (RunCli); this only builds the real
// environment and runs one command line.

#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"

int main(int argc, char** argv) {
  std::unique_ptr<medic::cli::CliEnv> env = medic::cli::NewRealCliEnv();
  const std::vector<std::string> args(argv + 1, argv + argc);
  return medic::cli::RunCli(args, *env);
}
